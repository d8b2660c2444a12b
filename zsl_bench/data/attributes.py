"""Attribute names, groups and value words of every dataset (DUET's prompts, plots, ZeroMamba's embeddings).

An attribute ``i`` has a raw ``name`` (as the dataset spells it), a ``group`` phrase and a ``value`` phrase,
e.g. CUB ``has_bill_shape::curved_(up_or_down)`` → group ``bill shape``, value ``curved``. Groups are listed in
order of first appearance, which is the order DUET writes them into its prompts.

Each dataset declaration (:mod:`zsl_bench.data.declare`) names an *attribute rule*, ``(root, A) -> AttributeInfo
| None``; the rules of the built-in datasets are made here:

* CUB: ``attributes.txt`` (312 lines ``<id> has_<group>::<value>``; shipped at the top of the CUB_200_2011
  archive). Group: ``<group>`` with ``_`` → space; value: ``<value>`` cut at ``(`` with ``_``/``-`` → space.
  These are the 28 groups of DUET's ``attributeindex2prompt.json``.
* AwA1 and AwA2: the same 85 predicates (``predicates.txt`` when present, else the built-in list, which is the
  same) in the 12 groups DUET uses (docs/model-maths.md#duet-prompts); a predicate is its own value word.
* SUN: the 102 SUN Attribute Database names (no data file ships them in xlsa17) in DUET's 14 groups. DUET's
  group phrases are kept verbatim, including its spelling "meterial", because the prompts are made of them.
* aPY: the 64 aPascal/aYahoo attributes (``attribute_names.txt`` of the UIUC ``attribute_data`` when present,
  else the built-in list) in 10 groups of this project (shape, visibility, body part, vehicle part, …).
* synth and any dataset folder with ``attributes.txt`` lines ``<group>::<value>``: split at ``::``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zsl_bench.errors import UserError


@dataclass(frozen=True)
class AttributeInfo:
    """Names, groups and values of the ``A`` attributes, in attribute (column) order.

    Attributes:
        names: ``[A]`` raw attribute names.
        groups: ``[A]`` group phrase of each attribute.
        values: ``[A]`` value phrase of each attribute.
        source: where the names came from (a file name or ``built-in``).
    """

    names: list[str]
    groups: list[str]
    values: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.names)

    @property
    def group_names(self) -> list[str]:
        """The distinct groups in order of first appearance."""
        return list(dict.fromkeys(self.groups))

    def members(self) -> dict[str, list[int]]:
        """Group → attribute indices, groups in order of first appearance."""
        out: dict[str, list[int]] = {g: [] for g in self.group_names}
        for i, g in enumerate(self.groups):
            out[g].append(i)
        return out


AttributeRule = Callable[["Path | None", int], "AttributeInfo | None"]

# ------------------------------------------------------------------------------------------ built-in tables


def _split(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


# AwA2 predicates.txt order.
AWA2_PREDICATES = _split(
    "black white blue brown gray orange red yellow patches spots stripes furry hairless toughskin big small "
    "bulbous lean flippers hands hooves pads paws longleg longneck tail chewteeth meatteeth buckteeth "
    "strainteeth horns claws tusks smelly flys hops swims tunnels walks fast slow strong weak muscle bipedal "
    "quadrapedal active inactive nocturnal hibernate agility fish meat plankton vegetation insects forager "
    "grazer hunter scavenger skimmer stalker newworld oldworld arctic coastal desert bush plains forest fields "
    "jungle mountains ocean ground water tree cave fierce timid smart group solitary nestspot domestic"
)

# DUET's 12 AwA2 groups (group order = first appearance in attribute order).
AWA2_GROUPS: dict[str, str] = {
    "color": "black white blue brown gray orange red yellow",
    "pattern": "patches spots stripes",
    "texture": "furry hairless toughskin",
    "shape": "big small bulbous lean",
    "has part": "flippers hands hooves pads paws longleg longneck tail chewteeth meatteeth buckteeth strainteeth "
    "horns claws tusks smelly muscle",
    "behaviour": "flys hops swims tunnels walks",
    "character": "fast slow strong weak active inactive nocturnal agility",
    "limb": "bipedal quadrapedal",
    "habit": "hibernate fierce timid smart group solitary nestspot",
    "diet": "fish meat plankton vegetation insects",
    "role": "forager grazer hunter scavenger skimmer stalker domestic",
    "habitat": "newworld oldworld arctic coastal desert bush plains forest fields jungle mountains ocean ground "
    "water tree cave",
}

# The 102 SUN Attribute Database names, in xlsa17 column order.
SUN_ATTRIBUTES = _split(
    "sailing/ boating|driving|biking|transporting things or people|sunbathing|vacationing/ touring|hiking|"
    "climbing|camping|reading|studying/ learning|teaching/ training|research|diving|swimming|bathing|eating|"
    "cleaning|socializing|congregating|waiting in line/ queuing|competing|sports|exercise|playing|gaming|"
    "spectating/ being in an audience|farming|constructing/ building|shopping|medical activity|working|"
    "using tools|digging|conducting business|praying|fencing|railing|wire|railroad|trees|grass|vegetation|"
    "shrubbery|foliage|leaves|flowers|asphalt|pavement|shingles|carpet|brick|tiles|concrete|metal|paper|"
    "wood (not part of a tree)|vinyl/ linoleum|rubber/ plastic|cloth|sand|rock/stone|dirt/soil|marble|glass|"
    "waves/ surf|ocean|running water|still water|ice|snow|clouds|smoke|fire|natural light|direct sun/sunny|"
    "electric/indoor lighting|aged/ worn|glossy|matte|sterile|moist/ damp|dry|dirty|rusty|warm|cold|natural|"
    "man-made|open area|semi-enclosed area|enclosed area|far-away horizon|no horizon|rugged scene|"
    "mostly vertical components|mostly horizontal components|symmetrical|cluttered space|scary|soothing|"
    "stressful",
    "|",
)

# DUET's 14 SUN groups: group → the SUN_ATTRIBUTES indices in it.
SUN_GROUPS: dict[str, tuple[int, ...]] = {
    "transportation function": (0, 1, 2, 7, 14, 33),
    "environment function": (3, 4, 5, 6, 8, 9, 15, 16, 18, 19, 22, 24, 31),
    "technical function": (10, 11, 12, 13, 17, 20, 21, 23, 25, 26, 27, 28, 29, 30, 32, 34, 35),
    "coarse meterial": (36, 37, 38, 47, 48, 51, 53, 54, 55, 56, 57, 58, 61, 66),
    "specific meterial": (39, 46, 49, 50, 52, 59, 60, 63, 65, 67, 68, 69, 70, 72, 73),
    "natural meterial": (40, 41, 42, 43, 44, 45, 62, 64, 71),
    "light": (74, 75, 76),
    "surface": (77, 78, 79, 80, 81, 82, 83, 84),
    "temperature": (85, 86),
    "origin property": (87, 88),
    "area": (89, 90, 91),
    "horizon": (92, 93, 94),
    "direction": (95, 96),
    "feeling": (97, 98, 99, 100, 101),
}


# The 64 aPascal/aYahoo attributes (UIUC attribute_data/attribute_names.txt), in xlsa17 column order.
APY_ATTRIBUTES = _split(
    "2D Boxy|3D Boxy|Round|Vert Cyl|Horiz Cyl|Occluded|Tail|Beak|Head|Ear|Snout|Nose|Mouth|Hair|Face|Eye|Torso|"
    "Hand|Arm|Leg|Foot/Shoe|Wing|Propeller|Jet engine|Window|Row Wind|Wheel|Door|Headlight|Taillight|"
    "Side mirror|Exhaust|Pedal|Handlebars|Engine|Sail|Mast|Text|Label|Furn. Leg|Furn. Back|Furn. Seat|"
    "Furn. Arm|Horn|Rein|Saddle|Leaf|Flower|Stem/Trunk|Pot|Screen|Skin|Metal|Plastic|Wood|Cloth|Furry|Glass|"
    "Feather|Wool|Clear|Shiny|Vegetation|Leather",
    "|",
)

# aPY groups (this project's; aPY has no DUET grouping): group → the APY_ATTRIBUTES indices in it.
APY_GROUPS: dict[str, tuple[int, ...]] = {
    "shape": (0, 1, 2, 3, 4),
    "visibility": (5,),
    "body part": (6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 43),
    "vehicle part": (21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36),
    "object part": (37, 38, 50),
    "furniture part": (39, 40, 41, 42),
    "riding gear": (44, 45),
    "plant part": (46, 47, 48, 49, 62),
    "material": (51, 52, 53, 54, 55, 56, 57, 58, 59, 63),
    "surface": (60, 61),
}

# Value phrases of the aPY names that are abbreviations (the others: the name in lower case).
APY_VALUES: dict[str, str] = {
    "2D Boxy": "2d boxy",
    "3D Boxy": "3d boxy",
    "Vert Cyl": "vertical cylinder",
    "Horiz Cyl": "horizontal cylinder",
    "Foot/Shoe": "foot or shoe",
    "Row Wind": "row of windows",
    "Furn. Leg": "furniture leg",
    "Furn. Back": "furniture back",
    "Furn. Seat": "furniture seat",
    "Furn. Arm": "furniture arm",
    "Stem/Trunk": "stem or trunk",
}


# -------------------------------------------------------------------------------------------------- readers


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read as UTF-8 text ({type(exc).__name__}); replace it") from exc


def _first(root: Path, name: str, subdirs: tuple[str, ...]) -> Path | None:
    for sub in subdirs:
        if (root / sub / name).is_file():
            return root / sub / name
    return None


def cub_value(raw: str) -> str:
    """``curved_(up_or_down)`` → ``curved``; ``all-purpose`` → ``all purpose``."""
    return " ".join(raw.split("(", 1)[0].replace("_", " ").replace("-", " ").split())


def read_cub_attributes(path: Path) -> AttributeInfo:
    """CUB ``attributes.txt`` (``<id> has_<group>::<value>`` per line)."""
    names, groups, values = [], [], []
    for i, line in enumerate(_lines(path)):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] != str(i + 1) or "::" not in parts[1]:
            raise UserError(f"{path} line {i + 1} ({line[:60]!r}) is not '<id {i + 1}> has_<group>::<value>'")
        name = parts[1].strip()
        group, value = name.split("::", 1)
        group = group.removeprefix("has_")
        names.append(name)
        groups.append(" ".join(group.replace("_", " ").split()))
        values.append(cub_value(value))
    return AttributeInfo(names, groups, values, path.name)


def read_pair_attributes(path: Path) -> AttributeInfo:
    """``<group>::<value>`` per line (the synthetic dataset's ``attributes.txt``)."""
    names, groups, values = [], [], []
    for i, line in enumerate(_lines(path)):
        name = line.strip()
        if "::" not in name:
            raise UserError(f"{path} line {i + 1} ({name[:60]!r}) is not '<group>::<value>'")
        group, value = name.split("::", 1)
        names.append(name)
        groups.append(group)
        values.append(value)
    return AttributeInfo(names, groups, values, path.name)


def _awa_attributes(root: Path | None, subdirs: tuple[str, ...]) -> AttributeInfo:
    names, source = list(AWA2_PREDICATES), "built-in"
    path = _first(root, "predicates.txt", subdirs) if root is not None else None
    if path is not None:
        rows = [line.split() for line in _lines(path)]
        names = [r[-1] for r in rows]
        if sorted(names) != sorted(AWA2_PREDICATES):
            raise UserError(f"{path} does not list the 85 AwA predicates; use the file of the AwA release")
        source = path.name
    group_of = {word: g for g, words in AWA2_GROUPS.items() for word in words.split()}
    return AttributeInfo(names, [group_of[n] for n in names], list(names), source)


def awa2_attributes(root: Path | None = None) -> AttributeInfo:
    """AwA2's 85 predicates in DUET's 12 groups (names from ``predicates.txt`` if present)."""
    return _awa_attributes(root, ("", "Animals_with_Attributes2"))


def awa_attributes(subdirs: tuple[str, ...]) -> AttributeRule:
    """Rule: the 85 AwA predicates (AwA1 and AwA2 share them), ``predicates.txt`` looked for in ``subdirs``."""
    return lambda root, _num: _awa_attributes(root, subdirs)


def sun_attributes() -> AttributeInfo:
    """The 102 SUN attributes in DUET's 14 groups."""
    group_of = {i: g for g, members in SUN_GROUPS.items() for i in members}
    names = list(SUN_ATTRIBUTES)
    return AttributeInfo(names, [group_of[i] for i in range(len(names))], names, "built-in")


def apy_attributes(root: Path | None = None) -> AttributeInfo:
    """aPY's 64 attributes in 10 groups (names checked against ``attribute_names.txt`` if present)."""
    names, source = list(APY_ATTRIBUTES), "built-in"
    path = _first(root, "attribute_names.txt", ("", "attribute_data")) if root is not None else None
    if path is not None:
        listed = [line.strip() for line in _lines(path)]
        if [n.lower() for n in listed] != [n.lower() for n in names]:
            raise UserError(f"{path} does not list the 64 aPascal/aYahoo attributes in order; use the UIUC file")
        names, source = listed, path.name
    group_of = {i: g for g, members in APY_GROUPS.items() for i in members}
    values = [APY_VALUES.get(n, n.lower()) for n in APY_ATTRIBUTES]
    return AttributeInfo(names, [group_of[i] for i in range(len(names))], values, source)


def fixed_attributes(names: list[str], groups: list[str] | None = None, source: str = "built-in") -> AttributeRule:
    """Rule: a built-in table. Without ``groups``, ``group::value`` names are split at ``::`` (else each name is
    its own group and value)."""
    if groups is not None and len(groups) != len(names):
        raise UserError(f"{len(names)} attribute names but {len(groups)} groups; give one group per name")
    pairs = [n.split("::", 1) if "::" in n else [n, n] for n in names]
    info = AttributeInfo(
        list(names), list(groups) if groups is not None else [p[0] for p in pairs], [p[1] for p in pairs], source
    )
    return lambda _root, _num: info


def read_attributes_txt(path: Path) -> AttributeInfo:
    """``attributes.txt``: CUB style (``<id> has_<group>::<value>``) or ``<group>::<value>`` per line."""
    first = _lines(path)[:1]
    cub_style = bool(first) and first[0].split(maxsplit=1)[0].isdigit()
    return read_cub_attributes(path) if cub_style else read_pair_attributes(path)


def attributes_txt(subdirs: tuple[str, ...] = ("",), fallback: AttributeRule | None = None) -> AttributeRule:
    """Rule: ``attributes.txt`` in the first of ``subdirs`` that has it, else ``fallback`` (else None)."""

    def rule(root: Path | None, num_attributes: int) -> AttributeInfo | None:
        path = _first(root, "attributes.txt", subdirs) if root is not None else None
        if path is not None:
            return read_attributes_txt(path)
        return fallback(root, num_attributes) if fallback is not None else None

    return rule


def attribute_info(dataset: str, root: Path | None, num_attributes: int) -> AttributeInfo | None:
    """The attributes of the registered ``dataset`` in the folder ``root`` (its declaration's rule, see
    :meth:`zsl_bench.data.declare.DatasetSpec.read_attributes`); None when it has no source for them there."""
    from zsl_bench.data.declare import dataset_spec

    return dataset_spec(dataset).read_attributes(root, num_attributes)
