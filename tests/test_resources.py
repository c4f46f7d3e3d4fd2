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
