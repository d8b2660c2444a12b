from zsl_bench.engine.selection import select_by_test, select_by_val


def rec(czsl, h, gamma=0.1, oracle_h=None, oracle_gamma=0.5):
    out = {"czsl": czsl, "u": h, "s": h, "h": h, "gamma": gamma}
    if oracle_h is not None:
        out["calibrated_on_test"] = {"gamma": oracle_gamma, "u": oracle_h, "s": oracle_h, "h": oracle_h}
    return out


HISTORY = [
    # epoch 1: best val H;   epoch 2: best val CZSL;   epoch 3: best test CZSL and best test-calibrated H
    {"epoch": 1, "val": rec(0.40, 0.60), "test": rec(0.30, 0.20, gamma=0.11, oracle_h=0.25, oracle_gamma=0.7)},
    {"epoch": 2, "val": rec(0.70, 0.50), "test": rec(0.35, 0.22, gamma=0.12, oracle_h=0.30, oracle_gamma=0.8)},
    {"epoch": 3, "val": rec(0.50, 0.40), "test": rec(0.90, 0.50, gamma=0.13, oracle_h=0.60, oracle_gamma=0.9)},
]


def test_by_val_never_looks_at_test():
    best = select_by_val(HISTORY)
    assert (best["epoch"], best["czsl_epoch"], best["gamma"]) == (1, 2, 0.11)
    assert best["test"] == {"czsl": 0.35, "u": 0.20, "s": 0.20, "h": 0.20}
    assert best["val"] == {"czsl": 0.70, "u": 0.60, "s": 0.60, "h": 0.60}


def test_by_test_uses_test_gamma_and_epochs():
    best = select_by_test(HISTORY)
    assert (best["epoch"], best["czsl_epoch"], best["gamma"]) == (3, 3, 0.9)
    assert best["test"] == {"czsl": 0.90, "u": 0.60, "s": 0.60, "h": 0.60}


def test_ties_pick_the_earliest_epoch():
    flat = [{"epoch": e, "val": rec(0.5, 0.5), "test": rec(0.5, 0.5, oracle_h=0.5)} for e in (1, 2, 3)]
    assert select_by_val(flat)["epoch"] == 1 and select_by_test(flat)["epoch"] == 1


def test_without_validation_the_last_epoch_counts():
    final = [{"epoch": e, "test": rec(0.1 * e, 0.1 * e, oracle_h=0.1)} for e in (1, 2, 3)]
    best = select_by_val(final)
    assert best["epoch"] == best["czsl_epoch"] == 3 and best["val"] is None
    assert select_by_test(final)["czsl_epoch"] == 3
