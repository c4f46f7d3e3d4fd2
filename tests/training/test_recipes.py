"""YAML recipes: reading, command-line values, dotted overrides, typed sections, and errors that name the fix."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lensfm_hf.training.recipes import apply_overrides, load_recipe, parse_section, parse_value, read_recipe


@dataclass
class Model:
    preset: str = "micro"
    image_size: int = 64
    method_config: dict = field(default_factory=dict)


@dataclass
class Training:
    learning_rate: float = 1e-3
    max_steps: int = 10
    seed: int | None = None
    bf16: bool = False


SECTIONS = {"model": Model, "training": Training}


@pytest.mark.parametrize("text, value", [
    ("10", 10), ("1e-3", 1e-3), ("2.5E4", 2.5e4), ("true", True), ("null", None), ("[a, b]", ["a", "b"]),
    ("{k: 1}", {"k": 1}), ("micro", "micro"), ("nan", "nan"), ("a: b: c", "a: b: c"),
])
def test_command_line_values_read_as_yaml_with_exponent_floats(text, value):
    assert parse_value(text) == value


def test_read_recipe_copies_dicts_and_refuses_missing_and_non_mapping_files(tmp_path):
    source = {"model": {"method_config": {"mask_ratio": 0.75}}}
    copy = read_recipe(source)
    copy["model"]["method_config"]["mask_ratio"] = 0.5
    assert source["model"]["method_config"]["mask_ratio"] == 0.75  # a deep copy: the caller's dict is untouched
    with pytest.raises(FileNotFoundError, match="nosuch.yaml does not exist"):
        read_recipe(tmp_path / "nosuch.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must be a YAML mapping of sections, got list"):
        read_recipe(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_recipe(tmp_path / "empty.yaml") == {}


def test_overrides_reach_sections_unique_bare_keys_and_nested_dicts():
    raw = apply_overrides({"model": {}}, ["training.max_steps=5", "image_size=32", "model.method_config.mask_ratio=0.6",
                                         "learning_rate=2e-4"], SECTIONS)
    assert raw == {"model": {"image_size": 32, "method_config": {"mask_ratio": 0.6}},
                   "training": {"max_steps": 5, "learning_rate": 2e-4}}
    assert apply_overrides({}, {"training.seed": "7"}, SECTIONS) == {"training": {"seed": "7"}}  # mapping: as given


@pytest.mark.parametrize("override, message", [
    ("max_steps", "is not KEY=VALUE"),
    ("max_stepz=3", "no recipe section has a field 'max_stepz' (did you mean 'max_steps'?)"),
    ("training=3", "names a whole section"),
    ("model.preset.size=3", "'preset' is not a mapping"),
])
def test_bad_overrides_name_the_problem_and_the_fix(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        apply_overrides({"model": {"preset": "micro"}}, [override], SECTIONS)


def test_a_key_in_two_sections_must_be_qualified():
    @dataclass
    class Data:
        seed: int = 0

    with pytest.raises(ValueError, match="ambiguous: sections training, data all have 'seed'"):
        apply_overrides({}, ["seed=1"], {"training": Training, "data": Data})


def test_sections_coerce_yaml_guesses_and_refuse_wrong_kinds():
    parsed = parse_section("training", Training, {"learning_rate": "1e-4", "max_steps": "20", "seed": 3})
    assert parsed == Training(learning_rate=1e-4, max_steps=20, seed=3)
    assert isinstance(parse_section("training", Training, {"learning_rate": 1}).learning_rate, float)
    with pytest.raises(ValueError, match="training.seed expects int or null, got 'abc'"):
        parse_section("training", Training, {"seed": "abc"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) in recipe section 'training': 'max_step' \(did you mean"):
        parse_section("training", Training, {"max_step": 3})


def test_load_recipe_fills_defaults_then_overrides_and_checks_sections(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  preset: tiny\ntraining:\n  max_steps: 4\n")
    seen = []
    parsed, raw = load_recipe(path, SECTIONS, overrides=["training.max_steps=8"],
                              defaults={"training": {"max_steps": 99, "seed": 5}}, before_parse=seen.append)
    assert parsed["model"] == Model(preset="tiny") and parsed["training"] == Training(max_steps=8, seed=5)
    assert raw["training"] == {"max_steps": 8, "seed": 5} and seen == [raw]  # the recipe's value beats a default
    (tmp_path / "bad.yaml").write_text("modle:\n  preset: tiny\n")
    with pytest.raises(ValueError, match=r"unknown recipe section\(s\) 'modle' \(did you mean 'model'\?\)"):
        load_recipe(tmp_path / "bad.yaml", SECTIONS)
    (tmp_path / "scalar.yaml").write_text("model: 3\n")
    with pytest.raises(ValueError, match="recipe section 'model' must be a mapping of field: value, got 3"):
        load_recipe(tmp_path / "scalar.yaml", SECTIONS)


def test_a_number_for_a_list_field_is_refused_naming_it():
    """Issue 21 item 16: `benchmark.methods: 5` failed later with a TypeError traceback ('int' is not iterable)."""
    import dataclasses

    import pytest

    from lensfm_hf.training.recipes import check_section

    @dataclasses.dataclass
    class Section:
        methods: list[str] = dataclasses.field(default_factory=list)
        options: dict | None = None

    with pytest.raises(ValueError, match=r"s.methods expects a list, got 5"):
        check_section("s", Section, {"methods": 5})
    with pytest.raises(ValueError, match=r"s.options expects a dict, got 1.5"):
        check_section("s", Section, {"options": 1.5})
    assert check_section("s", Section, {"methods": ["mae"], "options": None}) == {"methods": ["mae"], "options": None}
