"""The search's storage on a real PostgreSQL server (a throwaway cluster, tests/fixtures/postgres.py), and the
user errors a database brings: each is one clear line, and nothing of an existing study is lost.

- `postgresql://` works as the docs write it (psycopg 3), the password never appears in a message;
- an unreachable server, a wrong password, a database that does not exist -> `StorageError`, one line; from the
  command line: exit status 2, `error: ...` last on stderr, no traceback;
- a study name that exists with another search space -> refused, one line naming the difference, the study as it was;
- a database whose Optuna schema is older or newer than this Optuna -> one line saying what to do (upgrade, or
  install the newer Optuna); its trials are still there afterwards. The same on SQLite.

Real training over several workers on this server is tests/test_search_distributed.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from fixtures.postgres import MISSING_REASON, free_port, postgres_binaries, throwaway_postgres
from lib.search.driver import RunSpec, create_or_load_study
from lib.search.storage import StorageError, _sqlalchemy_url, describe_storage, open_storage

pytestmark = pytest.mark.skipif(postgres_binaries() is None, reason=MISSING_REASON)
REPO = Path(__file__).resolve().parents[1]
SEARCH = REPO / "core" / "gemma_hyperparameter_search.py"
SPACE_A = {"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}
SPACE_B = {"learning_rate": {"type": "loguniform", "low": 1e-6, "high": 1e-2},
           "warmup_ratio": {"type": "uniform", "low": 0.0, "high": 0.1}}


@pytest.fixture(scope="module")
def pg():
    with throwaway_postgres() as server:
        yield server


def _spec(tmp_path, storage, space=SPACE_A, name="s") -> RunSpec:
    return RunSpec(study_name=name, storage=storage, search_mode="random", objective="eval_cer", search_space=space,
                   pruner={"type": "none"}, training_config={}, base_output_dir=str(tmp_path / "out"),
                   studies_dir=str(tmp_path / "studies"))


def _add_trials(study, n=3):
    for i in range(n):
        study.add_trial(create_trial(params={"learning_rate": 1e-4 * (i + 1)},
                                     distributions={"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)},
                                     value=0.5 - 0.1 * i, user_attrs={"note": f"trial {i}"}))


def _snapshot(storage_url: str, name: str) -> tuple:
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    return (json.dumps(study.user_attrs, sort_keys=True),
            [(t.number, t.state, t.params, t.value, t.user_attrs) for t in study.trials])


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_postgresql_url_as_documented(pg, tmp_path, monkeypatch):
    url = pg.create_database("plain")
    assert url.startswith("postgresql://")  # as the docs write it: psycopg 3 underneath
    assert _sqlalchemy_url(url).startswith("postgresql+psycopg://")
    assert pg.password not in describe_storage(url) and "***" in describe_storage(url)
    spec = _spec(tmp_path, url)
    study = create_or_load_study(spec, resume=False)
    _add_trials(study)
    # the password kept out of the URL (and so out of logs and process lists): libpq's PGPASSWORD or ~/.pgpass
    monkeypatch.setenv("PGPASSWORD", pg.password)
    bare = url.replace(f":{pg.password}@", "@")
    assert [t.number for t in optuna.load_study(study_name="s", storage=open_storage(bare)).trials] == [0, 1, 2]
    again = optuna.load_study(study_name="s", storage=open_storage(url, heartbeat_interval=5, grace_period=10))
    assert [t.value for t in again.trials] == pytest.approx([0.5, 0.4, 0.3])
    assert again.user_attrs["search"]["search_space"] == SPACE_A


def test_unreachable_wrong_password_missing_database_are_one_line(pg):
    closed = free_port()
    cases = {
        "refused": (pg.url("postgres", port=closed), "cannot open the study database"),
        "password": (pg.url("postgres", password="Xyzzy-not-it"), "password authentication failed"),
        "no database": (pg.url("no_such_db"), 'database "no_such_db" does not exist'),
    }
    for what, (url, expected) in cases.items():
        with pytest.raises(StorageError) as info:
            open_storage(url)
        msg = _one_line(info.value)
        assert expected in msg, (what, msg)
        assert pg.password not in msg and "Xyzzy-not-it" not in msg, msg
        assert "--storage" in msg or "check" in msg, msg


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory):
    """A search config for the command line whose trials never run (each test fails before the first trial)."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = {"search_space": SPACE_B, "model_name": "embedded/tiny-gemma3", "load_in_4bit": False, "max_steps": 2,
           "eval_steps": 1, "input_data": str(REPO / "data" / "example.json")}
    (tmp / "search.json").write_text(json.dumps(cfg))
    return tmp


def _cli(cfg_dir: Path, storage: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SEARCH), "--study-name", "s", "--storage", storage, "--config",
                           str(cfg_dir / "search.json"), "--base-output-dir", str(cfg_dir / "out"), "--studies-dir",
                           str(cfg_dir / "studies"), "--n-trials", "1", "--trial-command", "false", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_wrong_password_is_one_line_exit_2(pg, cli_config):
    r = _cli(cli_config, pg.url("postgres", password="Xyzzy-not-it"))
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert "error: cannot open the study database" in last and "password authentication failed" in last
    assert "Xyzzy-not-it" not in last and ":***@" in last


def test_existing_study_with_another_search_space_is_refused_and_kept(pg, tmp_path, cli_config):
    url = pg.create_database("other_space")
    study = create_or_load_study(_spec(tmp_path, url, SPACE_A), resume=False)
    _add_trials(study)
    before = _snapshot(url, "s")
    with pytest.raises(SystemExit) as info:
        create_or_load_study(_spec(tmp_path, url, SPACE_B), resume=True)
    msg = _one_line(info.value.code)
    assert "searches another space" in msg and "warmup_ratio only in this config" in msg and "learning_rate" in msg
    assert _snapshot(url, "s") == before
    r = _cli(cli_config, url, "--resume")  # the command line: the same line, exit status 1, study as it was
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "searches another space" in r.stderr.strip().splitlines()[-1]
    assert _snapshot(url, "s") == before
    create_or_load_study(_spec(tmp_path, url, SPACE_A), resume=True)  # its own space: resumes
    assert _snapshot(url, "s") == before


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
@pytest.mark.parametrize("revision, advice", [("v3.0.0.d", "optuna storage upgrade"),
                                              ("v99.0.0.a", "newer Optuna")])
def test_schema_of_another_optuna_version_is_one_line_and_kept(pg, tmp_path, kind, revision, advice):
    if kind == "postgresql":
        db = f"schema_{revision.replace('.', '_')}"
        url = pg.create_database(db)

        def sql(q, params=()):
            return pg.execute(db, q, params)
    else:
        import sqlite3

        url = f"sqlite:///{tmp_path}/schema.db"

        def sql(q, params=()):
            with sqlite3.connect(tmp_path / "schema.db") as conn:
                return conn.execute(q.replace("%s", "?"), params).fetchall()
    _add_trials(create_or_load_study(_spec(tmp_path, url), resume=False))
    before = _snapshot(url, "s")
    (head,) = sql("SELECT version_num FROM alembic_version")[0]
    sql("UPDATE alembic_version SET version_num = %s", (revision,))  # as another Optuna version left it
    with pytest.raises(StorageError) as info:
        open_storage(url)
    msg = _one_line(info.value)
    assert advice in msg and "nothing was changed" in msg, msg
    assert sql("SELECT version_num FROM alembic_version")[0][0] == revision  # not "fixed" behind the user's back
    assert sql("SELECT count(*) FROM trials")[0][0] == 3
    sql("UPDATE alembic_version SET version_num = %s", (head,))
    assert _snapshot(url, "s") == before


RACE = ("import sys, time\n"
        "import optuna, lib.search.storage as st\n"
        "st._CREATE_RETRIES = int(sys.argv[3])\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "optuna.create_study(study_name='race', storage=st.open_storage(sys.argv[1]), load_if_exists=True)\n")


def _start_together(url: str, n: int, retries: int = 6) -> list[subprocess.CompletedProcess]:
    """`n` processes open the same fresh storage at the same instant (each imported everything before)."""
    start = str(time.time() + 8.0)
    procs = [subprocess.Popen([sys.executable, "-c", RACE, url, start, str(retries)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_workers_started_together_on_an_empty_database(pg, tmp_path, kind):
    # "the same command on every machine": all of them create Optuna's tables at once on the empty database
    # (without the retry in open_storage 1 of 6 PostgreSQL workers failed in 2 of 3 rounds: "duplicate key value
    # violates unique constraint pg_type_typname_nsp_index", a type two of them created at once)
    for round_ in range(2 if kind == "postgresql" else 1):
        url = pg.create_database(f"race{round_}") if kind == "postgresql" else f"sqlite:///{tmp_path}/race.db"
        results = _start_together(url, 6)
        for r in results:
            assert r.returncode == 0, r.stderr[-2000:]
        assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["race"]


def test_trial_states_survive_in_postgres(pg, tmp_path):
    """A trial reported and pruned through the storage the way a trial process does it."""
    url = pg.create_database("states")
    study = create_or_load_study(_spec(tmp_path, url), resume=False)
    t = study.ask()
    t.report(0.9, 1)
    t.report(0.8, 2)
    study.tell(t, state=TrialState.PRUNED)
    (got,) = optuna.load_study(study_name="s", storage=open_storage(url)).trials
    assert got.state == TrialState.PRUNED and got.intermediate_values == {1: 0.9, 2: 0.8}
