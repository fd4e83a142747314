"""`superres models add/remove`: the user's own models under names that work in every command."""

import numpy as np
import pytest

import superres
from conftest import nearest_edsr
from superres.cli.main import main
from superres.errors import ConfigError
from superres.models import save_weights
from superres.models.user import data_folder, user_models


def test_add_use_list_and_remove_a_model(tmp_path, capsys):
    source = save_weights(nearest_edsr(2), tmp_path / "downloaded" / "nearest_x2.safetensors")
    assert main(["models", "add", str(source), "--name", "near"]) == 0
    assert user_models() == {"near": data_folder() / "near.safetensors"}
    source.unlink()  # the registered copy lives on in the data folder
    img = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    out = superres.upscale(img, model="near", precision="fp32", device="cpu")
    assert np.array_equal(out, img.repeat(2, 0).repeat(2, 1))
    capsys.readouterr()
    assert main(["models"]) == 0
    assert "near" in capsys.readouterr().out
    assert main(["info", "near"]) == 0
    assert "family edsr; scales x2" in capsys.readouterr().out
    assert main(["models", "remove", "near"]) == 0
    assert user_models() == {} and not (data_folder() / "near.safetensors").exists()


def test_names_that_clash_or_files_that_are_no_model_are_refused_in_one_line(tmp_path, capsys):
    source = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    assert main(["models", "add", str(source), "--name", "mdsr-medium"]) == 2
    assert "bundled model or preset" in capsys.readouterr().err
    assert main(["models", "add", str(source), "--name", "../escape"]) == 2
    assert "not a usable model name" in capsys.readouterr().err
    (tmp_path / "junk.pth").write_bytes(b"not weights")
    assert main(["models", "add", str(tmp_path / "junk.pth")]) == 2
    err = capsys.readouterr().err
    assert "junk.pth" in err and len(err.strip().splitlines()) == 1 and user_models() == {}
    with pytest.raises(ConfigError, match="no model of yours is named 'nope'"):
        from superres.models.user import remove_user_model

        remove_user_model("nope")


def test_the_page_offers_registered_models(tmp_path):
    from superres.cli.serve import page_models

    source = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    assert main(["models", "add", str(source), "--name", "mine"]) == 0
    assert page_models([]) == {"mine": data_folder() / "mine.safetensors"}


def test_a_name_is_not_replaced_unless_asked_and_package_names_are_never_taken(tmp_path, capsys):
    from superres.models.user import add_user_model

    first = save_weights(nearest_edsr(2), tmp_path / "a.safetensors")
    second = save_weights(nearest_edsr(3), tmp_path / "b.safetensors")
    assert main(["models", "add", str(first), "--name", "mine"]) == 0
    assert main(["models", "add", str(second), "--name", "mine"]) == 2
    assert "use --replace to replace it" in capsys.readouterr().err
    assert main(["models", "add", str(second), "--name", "mine", "--replace"]) == 0
    assert superres.load_model("mine").scales == (3,)
    with pytest.raises(ConfigError, match="bundled model or preset"):
        add_user_model(first, "mdsr-medium")  # the Python API keeps the package's names too


def test_a_broken_index_hides_no_file_and_is_rewritten_by_the_next_add(tmp_path, caplog):
    source = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    data_folder().mkdir(parents=True)
    for junk in ('{"a":', '["a"]'):
        (data_folder() / "models.json").write_text(junk)
        assert (user_models() == {} and "cannot be read" in caplog.text) or "not a name -> file map" in caplog.text
        assert superres.load_model(source).scales == (2,)  # a path still loads
    assert main(["models", "add", str(source), "--name", "back"]) == 0
    assert list(user_models()) == ["back"]


def test_concurrent_adds_keep_every_name(tmp_path):
    import threading

    from superres.models.user import add_user_model

    source = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    threads = [threading.Thread(target=add_user_model, args=(source, f"m{i}")) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(user_models()) == [f"m{i}" for i in range(6)]
