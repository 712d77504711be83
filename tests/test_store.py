"""The store on SQLite and (when EDGESCORE_TEST_POSTGRES_URL is set) PostgreSQL: same tests."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator

import pytest
from conftest import PG_MISSING, PG_URL, postgres_schema

from edgescore.server.store import (
    MIGRATIONS,
    MeasurementKey,
    Migration,
    ProxyKey,
    open_store,
)
from edgescore.server.store.backends import _hide_password


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """Where a fresh store lives; opening it twice reaches the same data (restart tests)."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    if not PG_URL:
        pytest.skip(PG_MISSING)
    with postgres_schema() as url:
        yield url


def key(arch: str = "a" * 64, proxy: str = "synflow", **settings) -> ProxyKey:
    return ProxyKey.make(arch, "nb201", proxy, {"batch_size": 64, "seed": 0, **settings})


def test_proxy_round_trip_and_idempotent_put(location: str) -> None:
    with open_store(location) as store:
        k = key()
        assert store.get_proxy_result(k) is None
        assert store.put_proxy_result(k, 1.25, flags=["stand_in_data"], seconds=0.5)
        # The second put of the same key changes nothing: the first answer wins.
        assert not store.put_proxy_result(k, 99.0)
        got = store.get_proxy_result(k)
        assert got is not None and got.value == 1.25 and got.key == k
        assert got.flags == ("stand_in_data",) and got.seconds == 0.5 and got.error == ""

        failed, nan, inf = key(proxy="snip"), key(proxy="grasp"), key(proxy="zen")
        store.put_proxy_result(failed, None, error="INTERNAL: boom")
        store.put_proxy_result(nan, float("nan"))
        store.put_proxy_result(inf, float("-inf"))
        assert store.get_proxy_result(failed).error == "INTERNAL: boom"
        assert store.get_proxy_result(nan).value is None  # NaN reads back as None on both engines
        assert store.get_proxy_result(inf).value == -math.inf
        assert len(store.proxy_results_for("nb201", "a" * 64)) == 4


def test_proxy_key_parts_all_matter(location: str) -> None:
    with open_store(location) as store:
        base = key()
        variants = [key(seed=1), key(batch_size=32), key(arch="b" * 64), key(proxy="naswot"),
                    ProxyKey.make("a" * 64, "nb201", "synflow", {"batch_size": 64, "seed": 0},
                                  code_version="9.9")]
        for i, k in enumerate([base, *variants]):
            assert store.put_proxy_result(k, float(i))
        for i, k in enumerate([base, *variants]):
            assert store.get_proxy_result(k).value == float(i)
        # Key order in the settings does not matter: the JSON is canonical.
        reordered = ProxyKey.make("a" * 64, "nb201", "synflow", {"seed": 0, "batch_size": 64})
        assert store.get_proxy_result(reordered).value == 0.0


def test_proxy_key_from_resolved_settings() -> None:
    from edgescore.server.proxies.base import ResolvedSettings

    settings = ResolvedSettings(batch_size=64, seed=7, init="default", repeats=1,
                                data_kind="registered", dataset_id="ds1", extra={"k": "v"})
    k = ProxyKey.make("h", "nb201", "snip", settings)
    assert (k.seed, k.dataset_id) == (7, "ds1")
    assert '"extra":{"k":"v"}' in k.settings
    # uint64 seeds beyond BIGINT fit: the seed column is text.
    assert ProxyKey.make("h", "nb201", "snip", {"seed": 2**64 - 1}).seed == 2**64 - 1


def test_measurements(location: str) -> None:
    with open_store(location) as store:
        k1 = MeasurementKey.make("f" * 64, "raspi4", "onnxruntime", "1.17.0", {"threads": 4})
        k2 = MeasurementKey.make("f" * 64, "raspi4", "onnxruntime", "1.18.0", {"threads": 4})
        k3 = MeasurementKey.make("f" * 64, "raspi4", "onnxruntime", "1.18.0", {"threads": 1})
        stats = {"n": 30, "median_ms": 12.5, "samples_ms": [12.0, 12.5, 13.0]}
        assert store.put_measurement(k1, stats, agent_id="pi-1", space="nb201", arch="|x~0|")
        assert not store.put_measurement(k1, {"median_ms": 1.0})
        store.put_measurement(k2, {"median_ms": 11.0})
        store.put_measurement(k3, {"median_ms": 20.0})
        got = store.get_measurement(k1)
        assert got.stats == stats and got.median_ms == 12.5 and got.agent_id == "pi-1"
        assert got.key == k1 and (got.space, got.arch) == ("nb201", "|x~0|")
        assert len(store.find_measurements("f" * 64, "raspi4")) == 3
        assert len(store.find_measurements("f" * 64, "raspi4", {"threads": 4})) == 2
        assert store.find_measurements("f" * 64, "pixel3") == []
        # Only measurements whose architecture is known can train the predictor.
        assert [m.key for m in store.measurements_for_device("raspi4")] == [k1]
        assert store.measurements_for_device("raspi4", space="other") == []


def test_looked_up_measurements_are_kept_per_spelling(location: str) -> None:
    """A replayed value belongs to the spelling; a timed one to the artifact, for any spelling."""
    sha, a, b = "d" * 64, "|nor_conv_3x3~0|", "|skip_connect~0|"
    timed = MeasurementKey.make(sha, "cpu", "onnxruntime", "1.18")
    assert timed.digest == MeasurementKey.make(sha, "cpu", "onnxruntime", "1.18", arch="").digest
    with open_store(location) as store:
        assert store.put_measurement(timed, {"median_ms": 1.0, "by_architecture": False},
                                     space="nb201", arch=a)
        for arch, ms in ((a, 26.5), (b, 12.6)):
            assert store.put_measurement(MeasurementKey.make(sha, "pi", "replay", "1", arch=arch),
                                         {"median_ms": ms, "by_architecture": True},
                                         space="nb201", arch=arch)
        (got,) = store.find_measurements(sha, "cpu")
        assert got.key == timed and got.holds_for(a) and got.holds_for(b)
        replayed = {m.arch: m for m in store.find_measurements(sha, "pi")}
        assert replayed[b].key == MeasurementKey.make(sha, "pi", "replay", "1", arch=b)
        assert replayed[a].holds_for(a) and not replayed[a].holds_for(b)
        assert replayed[b].median_ms == 12.6
        # Stored before timed and looked-up ones were told apart: its own spelling only.
        store.put_measurement(MeasurementKey.make("c" * 64, "cpu", "ort", "1"), {"median_ms": 2},
                              arch=a)
        (old,) = store.find_measurements("c" * 64, "cpu")
        assert old.holds_for(a) and not old.holds_for(b)


def test_restart_keeps_everything(location: str) -> None:
    with open_store(location) as store:
        store.put_proxy_result(key(), 3.0)
        store.put_measurement(MeasurementKey.make("e" * 64, "cpu", "ort", "1"), {"median_ms": 2})
        store.add_job("job-1", "cpu", "e" * 64)
        store.agent_seen("agent-1", "cpu", {"runtimes": ["onnxruntime"]})
    with open_store(location) as store:
        assert store.get_proxy_result(key()).value == 3.0
        assert store.get_measurement(MeasurementKey.make("e" * 64, "cpu", "ort", "1")) is not None
        assert store.get_job("job-1").payload_ref == "e" * 64
        assert store.agents_seen()[0].capabilities == {"runtimes": ["onnxruntime"]}


def test_migrations_apply_once(location: str) -> None:
    with open_store(location) as store:
        applied = store.applied_migrations()
        assert [v for v, _, _ in applied] == [m.version for m in MIGRATIONS]
    with open_store(location) as store:
        assert store.applied_migrations() == applied  # re-opening re-ran nothing
    # A later release adds a step: only that one runs. CREATE TABLE without IF NOT EXISTS would
    # fail if it ran twice, so the third open proves it did not.
    extra = Migration(MIGRATIONS[-1].version + 1, "test table",
                      ("CREATE TABLE extra_test (id TEXT PRIMARY KEY)",))
    for _ in range(2):
        with open_store(location, migrations=(*MIGRATIONS, extra)) as store:
            assert store.schema_version() == extra.version
            assert store.applied_migrations()[:-1] == applied


def test_failed_migration_leaves_nothing(location: str) -> None:
    open_store(location).close()
    bad = Migration(MIGRATIONS[-1].version + 1, "half broken",
                    ("CREATE TABLE half_done (id TEXT)", "THIS IS NOT SQL"))
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error type
        open_store(location, migrations=(*MIGRATIONS, bad))
    good = Migration(bad.version, "fixed", ("CREATE TABLE half_done (id TEXT)",))
    with open_store(location, migrations=(*MIGRATIONS, good)) as store:
        assert store.schema_version() == good.version  # the table was rolled back, so this ran


def test_jobs_lifecycle_and_requeue_on_start(location: str) -> None:
    with open_store(location) as store:
        for i in range(3):
            store.add_job(f"job-{i}", "raspi4", f"sha-{i}")
        assert store.add_job("job-0", "other", "x").device_class == "raspi4"  # idempotent
        assert store.start_job("job-0", "agent-a")
        assert not store.start_job("job-0", "agent-b")  # already running
        assert store.start_job("job-1", "agent-a")
        assert store.finish_job("job-1", ok=True)
        assert not store.finish_job("job-1", ok=False)  # a late duplicate result is dropped
        assert store.start_job("job-2", "agent-b") and store.requeue_job("job-2", "agent lost")
        assert store.start_job("job-2", "agent-c")
        job = store.get_job("job-2")
        assert (job.state, job.attempts, job.agent_id) == ("running", 2, "agent-c")
    with open_store(location) as store:  # restart: running jobs go back to the queue
        requeued = store.requeue_inflight()
        assert [j.job_id for j in requeued] == ["job-0", "job-2"]
        assert all(j.state == "queued" and j.agent_id == "" for j in requeued)
        assert [j.job_id for j in store.jobs(state="queued", device_class="raspi4")] == [
            "job-0", "job-2"]
        assert [j.job_id for j in store.jobs(state="done")] == ["job-1"]
        assert store.requeue_inflight() == []
        with pytest.raises(ValueError):
            store.jobs(state="lost")


def test_agents_seen(location: str) -> None:
    with open_store(location) as store:
        store.agent_seen("pi-1", "raspi4", {"threads": 4})
        first = store.agents_seen()[0]
        store.agent_seen("pi-1", "raspi4", {"threads": 2})
        store.agent_seen("jetson-1", "jetson")
        again = {a.agent_id: a for a in store.agents_seen()}
        assert again["pi-1"].first_seen == first.first_seen
        assert again["pi-1"].last_seen >= first.last_seen
        assert again["pi-1"].capabilities == {"threads": 2}
        assert [a.agent_id for a in store.agents_seen("jetson")] == ["jetson-1"]


def test_concurrent_writers(location: str) -> None:
    with open_store(location) as store:
        def work(t: int) -> None:
            for i in range(25):
                store.put_proxy_result(key(arch=f"{t}-{i}"), float(i))
                store.put_proxy_result(key(arch="shared"), float(t))
                store.get_proxy_result(key(arch=f"{t}-{i}"))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(store.get_proxy_result(key(arch=f"{t}-24")).value == 24.0 for t in range(8))
        assert store.get_proxy_result(key(arch="shared")) is not None


def test_sqlite_default_location_and_wal(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with open_store() as store:
        assert store.kind == "sqlite"
        assert store.location == str(tmp_path / "xdg" / "edgescore" / "edgescore.db")
    conn = sqlite3.connect(tmp_path / "xdg" / "edgescore" / "edgescore.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with open_store(f"sqlite:///{tmp_path / 'other.db'}") as store:
        assert store.location == str(tmp_path / "other.db")
    with open_store(":memory:") as store:
        assert store.schema_version() == MIGRATIONS[-1].version


def test_postgres_url_password_hidden() -> None:
    assert _hide_password("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert _hide_password("postgresql://u@h/db") == "postgresql://u@h/db"
