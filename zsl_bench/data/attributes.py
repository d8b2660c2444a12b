"""Attribute names, groups and value words of every dataset (DUET's prompts, plots).

An attribute ``i`` has a raw ``name`` (as the dataset spells it), a ``group`` phrase and a ``value`` phrase,
e.g. CUB ``has_bill_shape::curved_(up_or_down)`` → group ``bill shape``, value ``curved``. Groups are listed in
order of first appearance, which is the order DUET writes them into its prompts.

* CUB: read from ``attributes.txt`` (312 lines ``<id> has_<group>::<value>``; shipped at the top of the
  CUB_200_2011 archive). Group: ``<group>`` with ``_`` → space; value: ``<value>`` cut at ``(`` with ``_``/``-``
  → space. These are the 28 groups of DUET's ``attributeindex2prompt.json``.
* AWA2: the 85 predicates (``predicates.txt`` when present, else the built-in list, which is the same) in the
  12 groups DUET uses (models.md §2.2); a predicate is its own value word.
* SUN: the 102 SUN Attribute Database names (no data file ships them in xlsa17) in DUET's 14 groups. DUET's
  group phrases are kept verbatim, including its spelling "meterial", because the prompts are made of them.
* synth and any dataset folder with ``attributes.txt`` lines ``<group>::<value>``: split at ``::``.
"""

from __future__ import annotations

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


def awa2_attributes(root: Path | None = None) -> AttributeInfo:
    """AwA2's 85 predicates in DUET's 12 groups (names from ``predicates.txt`` if present)."""
    names, source = list(AWA2_PREDICATES), "built-in"
    path = _first(root, "predicates.txt", ("", "Animals_with_Attributes2")) if root is not None else None
    if path is not None:
        rows = [line.split() for line in _lines(path)]
        names = [r[-1] for r in rows]
        if sorted(names) != sorted(AWA2_PREDICATES):
            raise UserError(f"{path} does not list the 85 AwA2 predicates; use the file of the AwA2 release")
        source = path.name
    group_of = {word: g for g, words in AWA2_GROUPS.items() for word in words.split()}
    return AttributeInfo(names, [group_of[n] for n in names], list(names), source)


def sun_attributes() -> AttributeInfo:
    """The 102 SUN attributes in DUET's 14 groups."""
    group_of = {i: g for g, members in SUN_GROUPS.items() for i in members}
    names = list(SUN_ATTRIBUTES)
    return AttributeInfo(names, [group_of[i] for i in range(len(names))], names, "built-in")


def attribute_info(dataset: str, root: Path | None, num_attributes: int) -> AttributeInfo | None:
    """The attributes of ``dataset`` (``cub``, ``awa2``, ``sun``, ``synth`` or a folder with attributes.txt).

    Args:
        dataset: registry name.
        root: the dataset folder (where ``attributes.txt`` / ``predicates.txt`` are looked for), or None.
        num_attributes: A of the split; the names must match it.

    Returns:
        The attribute info, or None when no source exists (CUB without its ``attributes.txt``).

    Raises:
        UserError: a source exists but is malformed or has another number of attributes than the split.
    """
    info: AttributeInfo | None
    if dataset == "awa2":
        info = awa2_attributes(root)
    elif dataset == "sun":
        info = sun_attributes()
    else:
        subdirs = ("", "CUB_200_2011", "CUB_200_2011/attributes")
        path = _first(root, "attributes.txt", subdirs) if root is not None else None
        if path is None:
            if dataset == "synth":
                from zsl_bench.data.synth import attribute_names

                return _from_pairs(attribute_names(), "synth generator", num_attributes)
            return None
        first = _lines(path)[:1]
        cub_style = bool(first) and first[0].split(maxsplit=1)[0].isdigit()
        info = read_cub_attributes(path) if cub_style else read_pair_attributes(path)
    if len(info) != num_attributes:
        raise UserError(
            f"{info.source} lists {len(info)} attribute names but att_splits.mat has {num_attributes} "
            "attributes; use the files of the same dataset"
        )
    return info


def _from_pairs(names: list[str], source: str, num_attributes: int) -> AttributeInfo:
    groups = [n.split("::", 1)[0] for n in names]
    values = [n.split("::", 1)[1] for n in names]
    if len(names) != num_attributes:
        raise UserError(f"{source} has {len(names)} attributes but the split has {num_attributes}")
    return AttributeInfo(list(names), groups, values, source)
