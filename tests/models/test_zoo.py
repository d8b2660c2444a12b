"""The zoo's shared helpers: options a model derives from the dataset it is trained on."""

from zsl_bench.models import dataset_options


def test_dataset_options_fill_only_what_the_factory_takes_and_the_user_left_unset() -> None:
    assert dataset_options("resnet_test", "cub", "/d/CUB", {"width": 8}) == {"width": 8}
    assert dataset_options("zeromamba_test", "cub", "/d/CUB", {}) == {"attribute_names": "cub:/d/CUB"}
    assert dataset_options("zeromamba_test", "cub", "/d/CUB", {"attribute_names": "sun"}) == {"attribute_names": "sun"}
    duet = dataset_options("duet_test", "awa2", "/d/AWA2", {"dataset": None})
    assert duet == {"dataset": "awa2", "data_root": "/d/AWA2"}
