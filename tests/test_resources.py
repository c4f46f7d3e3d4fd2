"""resources.py: shipped recipes are found by name, by recipes/<kind>/ path, or as a file; unknown names list them."""

import pytest

from lensfm_hf.resources import recipes_dir, resolve_recipe, shipped_recipes


def test_shipped_names_resolve_to_files():
    assert "mini" in shipped_recipes("benchmark")
    path = resolve_recipe("mini", "benchmark")
    assert path == recipes_dir() / "benchmark" / "mini.yaml" and path.is_file()
    assert resolve_recipe("recipes/benchmark/mini.yaml", "benchmark").read_text() == path.read_text()


def test_an_existing_file_is_taken_as_is(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("{}")
    assert resolve_recipe(recipe, "pretrain") == recipe


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=r"no_such does not exist.*shipped benchmark recipe \(.*mini"):
        resolve_recipe("no_such", "benchmark")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)  # 10^9 leaves in 300 bytes


def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path):
    """Issue 21 item 10: a 2 KB recipe whose aliases expand to a billion leaves exhausted memory."""
    from lensfm_hf.resources import load_yaml
    from lensfm_hf.training.recipes import read_recipe

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    with pytest.raises(ValueError, match=r"bomb.yaml is refused: its YAML aliases expand to more than 100,000"):
        read_recipe(bomb)
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("a: &a [1, *a]\n")
    with pytest.raises(ValueError, match="recursive YAML alias"):
        load_yaml(recursive)
    fine = tmp_path / "fine.yaml"
    fine.write_text("base: &base {lr: 0.001}\nmodel: *base\ndata: *base\n")  # ordinary aliases still load
    assert load_yaml(fine) == {"base": {"lr": 0.001}, "model": {"lr": 0.001}, "data": {"lr": 0.001}}


def test_the_benchmark_refuses_a_bomb_before_it_runs(tmp_path):
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("benchmark:\n  name: x\n" + BOMB.replace("a:", "z:", 1).replace("*a", "*z").replace("&a", "&z"))
    with pytest.raises(ValueError, match="refused"):
        load_benchmark_recipe(bomb)
