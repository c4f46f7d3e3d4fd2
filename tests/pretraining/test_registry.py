"""The method registry: a method registers itself by defining its model class, and one alias table accepts the
zoo's spellings (`ijepa-physics`, `lensfm/ijepa-physics`) wherever a method is named."""

from __future__ import annotations

import pytest

from lensfm_hf.pretraining import (
    PRETRAINING_METHODS,
    LensMAEConfig,
    LensMAEForPreTraining,
    LensPhysicsIJEPAConfig,
    LensPhysicsIJEPAForPreTraining,
    get_pretraining_classes,
    method_display_name,
    registry,
    resolve_method,
    zoo_repo_id,
)


@pytest.mark.parametrize("spelling", ["ijepa_physics", "ijepa-physics", "lensfm/ijepa-physics", "lensfm/ijepa_physics",
                                      "IJEPA-Physics"])
def test_every_spelling_of_the_zoo_names_the_physics_method(spelling):
    assert resolve_method(spelling) == "ijepa_physics"
    assert get_pretraining_classes(spelling) == (LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining)
    assert method_display_name(spelling) == "I-JEPA (physics)"
    # the zoo's repo id and the alias table are one rule: the repo id of every method resolves back to it
    assert all(resolve_method(zoo_repo_id(method)) == method for method in PRETRAINING_METHODS)


def test_unknown_method_names_the_nearest_and_every_registered_one():
    with pytest.raises(ValueError, match=r"unknown pretraining method 'ijepa-phisics' \(did you mean 'ijepa_physics'"
                                         r"\?\); choose one of mae, simclr, moco, dino, ibot, ijepa, ijepa_physics\."):
        resolve_method("ijepa-phisics")


def test_a_method_registers_itself_by_defining_its_model_class():
    class ToyConfig(LensMAEConfig):
        model_type = "lens_registry_toy"
        display_name = "Toy MAE"
        method = "registry_toy"

    try:
        class ToyForPreTraining(LensMAEForPreTraining):
            config_class = ToyConfig

        assert PRETRAINING_METHODS["registry_toy"] == (ToyConfig, ToyForPreTraining)
        assert get_pretraining_classes("lensfm/registry-toy").model_class is ToyForPreTraining
        assert method_display_name("registry-toy") == "Toy MAE"

        class Impostor(LensMAEForPreTraining):  # a different class claiming a taken name is refused
            config_class = ToyConfig
    except ValueError as error:
        assert "method 'registry_toy' is registered by" in str(error) and "ToyForPreTraining" in str(error)
    else:
        pytest.fail("a second class registered under a taken method name")
    finally:
        registry._REGISTRY.pop("registry_toy", None)
    # a subclass without its own config (a variant of a method, e.g. other masks) registers nothing
    class Variant(LensMAEForPreTraining):
        pass

    assert PRETRAINING_METHODS["mae"].model_class is LensMAEForPreTraining


def test_a_method_name_must_be_snake_case():
    class Hyphenated(LensMAEConfig):
        method = "my-mae"

    with pytest.raises(ValueError, match="snake_case"):
        class HyphenatedForPreTraining(LensMAEForPreTraining):
            config_class = Hyphenated
    assert "my-mae" not in PRETRAINING_METHODS
