"""Traversal fuzz against the prompt manager's store and the viewers' file/image resolution, and against the
running apps' file route: names such as `../x`, absolute paths, percent-encoded separators, backslashes, NUL
bytes and symlinks pointing out of the folder. Every file-system call Python makes during the calls is recorded
with an audit hook (open / os.remove / os.rename / os.mkdir / os.symlink ...); the test fails if any touches the
`outside` folder, or anything under the sandbox that is not inside the allowed folder."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.ui.make_fixtures import make_ui_fixtures
from lib.ui.paths import UnsafePathError, check_relative_name, resolve_image, resolve_inside
from lib.ui.prompts import PromptStore, PromptStoreError, render_prompt_yaml
from lib.ui.viewer import open_result, result_names

_EVENTS = ("open", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.truncate",
           "os.chmod", "os.utime", "shutil.copyfile", "shutil.rmtree", "os.listdir", "os.scandir")


class FsRecorder:
    """Collects the paths of file-system audit events while `active`."""

    def __init__(self):
        self.active = False
        self.paths: list[tuple[str, str]] = []
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if not self.active or event not in _EVENTS:
            return
        for a in args[:2]:
            if isinstance(a, (str, bytes, os.PathLike)):
                p = os.fsdecode(a)
                self.paths.append((event, os.path.realpath(os.path.abspath(p))))

    def __enter__(self):
        self.paths.clear()
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False


_REC = FsRecorder()


def _assert_confined(events, sandbox: Path, allowed: list[Path]):
    sandbox = os.path.realpath(sandbox)
    allowed_r = [os.path.realpath(a) for a in allowed]
    for event, p in events:
        if os.path.commonpath([p, sandbox]) != sandbox:
            continue  # python's own files (imports), /dev/urandom, ...
        assert any(os.path.commonpath([p, a]) == a for a in allowed_r), f"{event} outside the allowed folder: {p}"


@pytest.fixture()
def sandbox(tmp_path):
    fx = make_ui_fixtures(tmp_path / "app")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_yml = outside / "secret.yml"
    secret_yml.write_text('prompt_text: "SECRET"\n', encoding="utf-8")
    secret_json = outside / "secret.json"
    secret_json.write_text(fx["a"].read_text(encoding="utf-8"), encoding="utf-8")  # a valid result file
    (outside / "secret.png").write_bytes(fx["data"].joinpath("images/gov_00.png").read_bytes())
    prompts, results = fx["prompts"], fx["results"]
    os.symlink(secret_yml, prompts / "link.yml")
    os.symlink(outside, prompts / "linkdir")
    os.symlink(secret_json, results / "evil.json")
    os.symlink(outside, results / "linkdir")
    os.symlink(outside / "secret.png", fx["data"] / "images" / "evil.png")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    yield {"fx": fx, "outside": outside, "tmp": tmp_path, "before": before, "secret_yml": secret_yml,
           "secret_json": secret_json}
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before  # nothing written or deleted outside


def names_for(sb) -> list[str]:
    o = sb["outside"]
    return ["../outside/secret.yml", "../../outside/secret.yml", str(sb["secret_yml"]), str(sb["secret_json"]),
            "..%2foutside%2fsecret.yml", "%2e%2e%2foutside%2fsecret.yml", "%252e%252e%252foutside%252fsecret.yml",
            "..\\outside\\secret.yml", "sub/../../outside/secret.yml", "....//outside/secret.yml", "link.yml",
            "linkdir/secret.yml", "linkdir/secret.json", "evil.json", "~/secret.yml", "C:\\secret.yml",
            "secret.yml\x00.txt", "\x00", "", "  ", ".hidden.yml", "a/b.yml", "．．／outside／secret.yml",
            f"file://{o}/secret.yml", "/../" + str(o)[1:] + "/secret.yml", "..", ".", "/"]


def test_check_relative_name_refuses_traversal():
    for bad in ["../x", "/etc/passwd", "..%2fx", "%2e%2e/x", "%252e%252e%252fx", "a\\..\\x", "x/../../y", "\x00",
                "C:x", "~/x", ""]:
        with pytest.raises(UnsafePathError):
            check_relative_name(bad)
    assert check_relative_name("sub/ok.json") == "sub/ok.json"


def test_prompt_store_fuzz(sandbox):
    fx = sandbox["fx"]
    store = PromptStore(fx["prompts"])
    assert "link.yml" not in store.names() and "default.yml" in store.names()
    y = render_prompt_yaml("x")
    for name in names_for(sandbox):
        with _REC as rec:
            for op in (lambda: store.read_text(name), lambda: store.entry(name), lambda: store.add(name, y),
                       lambda: store.update(name, y, confirm_overwrite=True), lambda: store.delete(name, confirm=True)):
                try:
                    op()
                except PromptStoreError:
                    pass
        _assert_confined(rec.paths, sandbox["tmp"], [fx["prompts"]])
    # the symlinks themselves were not followed out, and nothing outside changed (checked by the fixture)
    assert os.path.islink(fx["prompts"] / "link.yml")


@given(st.lists(st.sampled_from(["..", ".", "%2e", "%2f", "%252f", "/", "\\", "outside", "secret.yml", "link.yml",
                                 "linkdir", "~", "C:", "\x00", "a"]), min_size=1, max_size=7))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_names_stay_inside(sandbox, parts):
    fx = sandbox["fx"]
    name = "".join(parts)
    store = PromptStore(fx["prompts"])
    with _REC as rec:
        try:
            store.read_text(name)
        except PromptStoreError:
            pass
        try:
            p = resolve_inside(fx["results"], name)
            assert os.path.commonpath([str(p), os.path.realpath(fx["results"])]) == os.path.realpath(fx["results"])
        except UnsafePathError:
            pass
    _assert_confined(rec.paths, sandbox["tmp"], [fx["prompts"], fx["results"]])


def test_viewer_result_files_fuzz(sandbox):
    fx = sandbox["fx"]
    names = result_names(fx["results"])
    assert "evil.json" not in names and not any(n.startswith("linkdir") for n in names)
    for name in names_for(sandbox):
        with _REC as rec:
            try:
                open_result(fx["results"], name)
                raise AssertionError(f"{name!r} was opened")
            except (UnsafePathError, ValueError):
                pass
        _assert_confined(rec.paths, sandbox["tmp"], [fx["results"]])


def test_viewer_images_fuzz(sandbox):
    fx = sandbox["fx"]
    roots = [str(fx["results"]), str(fx["data"])]
    o = sandbox["outside"]
    for raw in ["../../outside/secret.png", str(o / "secret.png"), "images/evil.png", "images/../../outside/secret.png",
                "/" + "/".join([".."] * 12) + str(o / "secret.png"), "../results/linkdir/secret.png"]:
        with _REC as rec:
            path, reason = resolve_image(raw, roots, [str(fx["data"]), str(fx["results"])])
        assert path is None and reason, raw
        _assert_confined(rec.paths, sandbox["tmp"], [fx["results"], fx["data"]])
    ok, _ = resolve_image("images/gov_00.png", roots, [])
    assert ok is not None and ok.is_file()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_running_viewer_serves_only_allowed_files(sandbox):
    """The HTTP side: Gradio's file route refuses everything outside --eval_dir / --data-root."""
    from fixtures.ui.browser import load_ui, running

    fx = sandbox["fx"]
    ev = load_ui("evaluate_viewer")
    args = ev.ViewerArgs(eval_dir=str(fx["results"]), data_root=[str(fx["data"])])
    with running(ev.build_app(args), ev.allowed_roots(args)) as url:
        f = url.rstrip("/") + "/gradio_api/file="
        assert _status(f + str(fx["data"] / "images" / "gov_00.png")) == 200  # the test can fail
        o = sandbox["outside"]
        for path in [str(o / "secret.png"), str(o / "secret.json"), str(fx["data"]) + "/../outside/secret.png",
                     str(fx["data"] / "images" / "evil.png"), str(fx["results"] / "evil.json"),
                     str(fx["results"] / "linkdir" / "secret.json"), "/etc/passwd",
                     str(fx["data"]).replace("/", "%2f") + "%2f..%2f..%2foutside%2fsecret.png",
                     str(Path(__file__).resolve())]:
            assert _status(f + path) in (403, 404), path


def test_recorder_catches_an_outside_read(sandbox):
    """The audit-hook check above is able to fail."""
    with _REC as rec:
        sandbox["secret_yml"].read_text(encoding="utf-8")
    with pytest.raises(AssertionError, match="outside the allowed folder"):
        _assert_confined(rec.paths, sandbox["tmp"], [sandbox["fx"]["prompts"]])


@pytest.mark.slow  # two apps plus ~30 API round trips: 40 s on the loaded 2-core machine
def test_apps_http_api_fuzz(sandbox):
    """The same names sent to the running apps' HTTP API (what a hand-crafted request can do, bypassing the page):
    refused, and no file outside touched — the apps run in this process, so the audit hook sees the server's calls."""
    from gradio_client import Client

    from fixtures.ui.browser import load_ui, running

    fx = sandbox["fx"]
    ev, pm = load_ui("evaluate_viewer"), load_ui("prompt_manager")
    vargs = ev.ViewerArgs(eval_dir=str(fx["results"]), data_root=[str(fx["data"])])
    pargs = pm.PromptManagerArgs(config_dir=str(fx["prompts"]))
    o = sandbox["outside"]
    names = ["../outside/secret.yml", str(sandbox["secret_json"]), "%2e%2e%2foutside%2fsecret.json",
             "..\\outside\\secret.yml", "sub/../../outside/secret.yml", "linkdir/secret.json", "link.yml",
             "evil.json", f"file://{o}/secret.yml"]  # one of each kind: every extra name costs ~3 round trips
    with running(ev.build_app(vargs), ev.allowed_roots(vargs)) as vurl, running(pm.build_app(pargs)) as purl:
        # download_files=False: the run config names the dataset file, which the app (rightly) does not serve
        vc, pc = Client(vurl, verbose=False, download_files=False), Client(purl, verbose=False)
        assert "before_sft" in str(vc.predict("before_sft.json", api_name="/load"))  # the call path works
        with _REC as rec:
            for name in names:
                with pytest.raises(Exception, match="not in the list of choices|outside|not allowed"):
                    vc.predict(name, api_name="/load")
                status = pc.predict(name, "x", "image_first", "", "", api_name="/add")[0]
                if status.startswith("✔ created "):  # a harmless name (e.g. "evil.json" -> evil.json.yml)
                    assert (fx["prompts"] / status.removeprefix("✔ created ")).is_file(), status
                else:
                    assert status.startswith("✗"), (name, status)
                try:  # the editor's name is a dropdown: Gradio itself refuses values that are not listed
                    status = pc.predict(name, 'prompt_text: "x"\n', True, api_name="/save")[0]
                except Exception as exc:  # noqa: BLE001
                    status = "✗ " + str(exc)
                    assert "not in the list of choices" in str(exc)
                assert status.startswith("✗"), (name, status)
        _assert_confined(rec.paths, sandbox["tmp"], [fx["prompts"], fx["results"], fx["data"]])


def test_apps_serve_only_the_images_their_files_name(sandbox):
    """Result files in a home-like folder: the apps serve the images the result files name and nothing else there
    — not dotfiles (.env, .ssh/id_rsa), not other files, not images no result names, not hidden images."""
    from fixtures.ui.browser import load_ui, running

    fx = sandbox["fx"]
    home = sandbox["tmp"] / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n", encoding="utf-8")
    (home / ".env").write_text("API_KEY=secret\n", encoding="utf-8")
    (home / "notes.txt").write_text("private\n", encoding="utf-8")
    img = fx["data"] / "images" / "gov_00.png"
    (home / "unlisted.png").write_bytes(img.read_bytes())
    (home / ".hidden.png").write_bytes(img.read_bytes())
    for name in ("before_sft.json", "after_sft.json"):
        (home / name).write_text((fx["results"] / name).read_text(encoding="utf-8"), encoding="utf-8")
    refused = [home / ".ssh" / "id_rsa", home / ".env", home / "notes.txt", home / "unlisted.png",
               home / ".hidden.png", home / "before_sft.json", fx["data"] / "test.json"]
    cmp, ev = load_ui("compare_finetune"), load_ui("evaluate_viewer")
    cargs = cmp.CompareArgs(model1=str(home / "before_sft.json"), model2=str(home / "after_sft.json"),
                            data_root=[str(fx["data"])])
    vargs = ev.ViewerArgs(eval_dir=str(home), data_root=[str(fx["data"])])
    for demo, roots in ((cmp.build_app(cargs), cmp.allowed_roots(cargs)), (ev.build_app(vargs), ev.allowed_roots(vargs))):
        with running(demo, roots) as url:
            f = url.rstrip("/") + "/gradio_api/file="
            assert _status(f + str(img)) == 200  # an image the result files name
            for path in refused:
                assert _status(f + str(path)) in (403, 404), path


def test_hidden_images_are_not_resolved(sandbox):
    fx = sandbox["fx"]
    hidden = fx["data"] / ".cache"
    hidden.mkdir()
    (hidden / "x.png").write_bytes((fx["data"] / "images" / "gov_00.png").read_bytes())
    (fx["data"] / "images" / "notes.txt").write_text("not an image", encoding="utf-8")
    for raw in (".cache/x.png", "images/notes.txt"):
        path, reason = resolve_image(raw, [str(fx["data"])], [])
        assert path is None and "not shown" in reason, raw
