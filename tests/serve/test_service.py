"""The service without HTTP: snapshots (corrupt ones skipped), rollback, deterministic replay, the
fast path of an error memory, the drift response, and `lifelong serve --replay`."""

from __future__ import annotations

import json

import pytest
import torch

from lifelong.data import Batch
from lifelong.learn.methods import LEARNERS
from lifelong.learn.methods.naive import Naive
from lifelong.serve.config import config_from_dict
from lifelong.serve.service import Service
from lifelong.serve.snapshots import SnapshotStore
from lifelong.serve.validation import parse_feedback
from lifelong.serve.worker import PublishedModel, Replayer, state_digest

from tests.serve.conftest import assert_states_equal, one_thread

DIM, N_CLASSES = 6, 3


def make_cfg(tmp_path, **serve):
    learner = serve.pop("learner", {"name": "er", "mem_size": 50})
    train = serve.pop("train", {})
    return config_from_dict({"learner": learner, "train": train,
                             "model": {"input_shape": [DIM], "n_classes": N_CLASSES, "hidden": [12]},
                             "serve": {"data_dir": str(tmp_path / "data"), "batch_size": 8, "threads": 0,
                                       "snapshot_every": 10**6, "drift_delta": 0, "linger_ms": 0, **serve}}, env={})


def stream(n, seed=0, remap=None):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(N_CLASSES, DIM, generator=torch.Generator().manual_seed(99)) * 3
    y = torch.randint(N_CLASSES, (n,), generator=g)
    x = means[y] + torch.randn(n, DIM, generator=g) * 0.5
    if remap is not None:
        y = torch.tensor(remap)[y]
    return x, y


def feed(svc, x, y, per=5, wait=True):
    out = []
    for i in range(0, len(y), per):
        r = svc.feedback(parse_feedback({"inputs": x[i:i + per].tolist(), "labels": y[i:i + per].tolist()}, svc.cfg))
        out += r["correct"]
        if wait:
            assert svc.worker.wait_published(max(r["seqs"]), timeout=60)
    return out


def live_digest(svc) -> str:
    return svc.worker.request("digest").result(timeout=60)["learner"]


def scratch_digest(svc) -> str:
    with one_thread():
        learner, _ = Replayer(svc.cfg, svc.log, None).state_at(svc.log.last_step())
    return state_digest(learner.state_dict())


@pytest.fixture
def service(tmp_path):
    made = []

    def make(**serve):
        svc = Service(make_cfg(tmp_path, **serve), threads=False)
        svc.start()
        made.append(svc)
        return svc

    yield make
    for s in made:
        s.stop(snapshot=False)


# -- snapshots ------------------------------------------------------------------------------------
def _two_snapshots(service):
    svc = service()
    x, y = stream(100)
    feed(svc, x[:40], y[:40])
    a = svc.worker.request("snapshot").result()
    feed(svc, x[40:80], y[40:80])
    b = svc.worker.request("snapshot").result()
    feed(svc, x[80:], y[80:])  # events after the newest snapshot: replayed on restart
    want = live_digest(svc)
    svc.stop(snapshot=False)
    return a, b, want


def _flip(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


CORRUPTIONS = {
    "bit flip": _flip,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "foreign file": lambda p: p.write_bytes(b"PK\x03\x04 not a snapshot"),
    "bad checksum": lambda p: p.write_bytes(p.read_bytes()[:8] + b"0" * 64 + p.read_bytes()[72:]),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_corrupt_newest_snapshot_is_skipped_for_the_previous_one(service, corrupt):
    a, b, want = _two_snapshots(service)
    CORRUPTIONS[corrupt](b.path)
    svc = service()
    assert svc.worker.restored_from == a  # b failed its checksum
    assert live_digest(svc) == want == scratch_digest(svc)
    assert svc.worker.cursor == 100


def test_partial_snapshot_and_all_corrupt(service, tmp_path):
    a, b, want = _two_snapshots(service)
    snap_dir = b.path.parent
    (snap_dir / ".snap-000000000099-000000000100.tmp").write_bytes(b"LLSNAP1\n half written")  # a crash mid-write
    for snap in snap_dir.glob("snap-*.pt"):
        _flip(snap)
    svc = service()
    assert svc.worker.restored_from is None  # nothing valid: replayed from scratch
    assert live_digest(svc) == want
    assert not list(snap_dir.glob(".snap-*.tmp"))


def test_snapshot_holds_the_full_learner_state(service):
    svc = service()
    x, y = stream(30)
    feed(svc, x, y)
    info = svc.worker.request("snapshot").result()
    state = SnapshotStore(info.path.parent, fingerprint=svc.cfg.fingerprint()).load(info)
    assert set(state) >= {"model", "opt", "generator", "extra"}
    assert state["extra"]["memory"]["size"] == 30  # the replay memory is in it
    with one_thread():
        learner, _ = Replayer(svc.cfg, svc.log, None).state_at(info.step)
    assert_states_equal(state, learner.state_dict())


# -- rollback -------------------------------------------------------------------------------------
def test_rollback_restores_a_snapshot_and_replays_deterministically(service, tmp_path):
    svc = service()
    x, y = stream(90)
    feed(svc, x[:30], y[:30])
    s30 = svc.worker.request("snapshot").result()
    feed(svc, x[30:60], y[30:60])
    out = svc.worker.request("rollback", to_seq=45).result()  # newest snapshot at or before 45: seq 30
    assert out["snapshot_seq"] == 30 and out["discarded_events"] == 30
    snap_state = SnapshotStore(s30.path.parent, fingerprint=svc.cfg.fingerprint()).load(s30)
    assert live_digest(svc) == state_digest(snap_state) == svc.published.digest()
    feed(svc, x[60:], y[60:])  # learning goes on after the rollback
    want = live_digest(svc)
    assert want == scratch_digest(svc)  # the journal replays the rollback too
    svc.stop(snapshot=False)
    assert live_digest(service()) == want


# -- fast path ----------------------------------------------------------------------------------
class Memo(Naive):
    """A toy error memory: exact-match recall of labelled inputs, plus a drift counter."""

    name = "memo_test"

    def __init__(self, model, **base):
        super().__init__(model, **base)
        self.keys = torch.zeros(0, DIM)
        self.vals = torch.zeros(0, dtype=torch.int64)
        self.drifts = 0

    def update_memory(self, batch: Batch) -> None:
        self.keys = torch.cat([self.keys, batch.x.flatten(1)])
        self.vals = torch.cat([self.vals, batch.y])

    def observe(self, batch):
        stats = super().observe(batch)
        self.update_memory(batch)
        return stats

    def predict(self, x, task=None):
        logits = super().predict(x, task)
        if len(self.keys):
            hit = (x.flatten(1)[:, None, :] == self.keys[None]).all(-1)  # (B, M)
            rows = hit.any(1)
            idx = hit.int().argmax(1)
            logits[rows] = torch.nn.functional.one_hot(self.vals[idx[rows]], logits.shape[1]).float() * 100
        return logits

    def on_drift(self) -> None:
        self.drifts += 1

    def extra_state(self):
        return {"keys": self.keys.clone(), "vals": self.vals.clone(), "drifts": self.drifts}

    def load_extra_state(self, state):
        self.keys, self.vals, self.drifts = state["keys"].clone(), state["vals"].clone(), int(state["drifts"])


@pytest.fixture
def memo(monkeypatch):
    monkeypatch.setitem(LEARNERS, "memo_test", Memo)


def test_published_model_fast_path_until_the_worker_catches_up(memo, tmp_path):
    cfg = make_cfg(tmp_path, learner={"name": "memo_test"})
    from lifelong.serve.config import build_learner

    worker_learner = build_learner(cfg)
    pm = PublishedModel(lambda: build_learner(cfg))
    pm.publish(worker_learner.state_dict(), seq=0, step=0)
    x = torch.randn(2, DIM)
    want = (pm.predict(x)[0].argmax(1) + 1) % N_CLASSES  # labels the slow model does not predict
    assert pm.fast_update(torch.tensor([1, 2]), Batch(x, want))
    assert torch.equal(pm.predict(x)[0].argmax(1), want)  # corrected at once
    pm.publish(worker_learner.state_dict(), seq=0, step=0)  # the worker has not applied 1..2 yet
    assert torch.equal(pm.predict(x)[0].argmax(1), want)  # the fast update survives the swap
    assert len(worker_learner.keys) == 0  # and never touched the worker's learner
    worker_learner.observe(Batch(x, want))
    pm.publish(worker_learner.state_dict(), seq=2, step=1)
    assert torch.equal(pm.predict(x)[0].argmax(1), want) and pm._fast == []
    assert len(pm.current.keys) == 2  # learned once, not twice
    assert not pm.fast_update(torch.tensor([1]), Batch(x[:1], want[:1])) or len(pm.current.keys) == 2


def test_publish_replays_fast_updates_outside_the_serving_lock_and_keeps_late_ones_in_order(memo, tmp_path,
                                                                                            monkeypatch):
    """A publish re-applies pending fast-path updates to the spare copy without the serving lock
    (``/predict`` waits only for the swap); an update that lands meanwhile is applied too, after
    the earlier ones."""
    cfg = make_cfg(tmp_path, learner={"name": "memo_test"})
    from lifelong.serve.config import build_learner

    worker_learner = build_learner(cfg)
    pm = PublishedModel(lambda: build_learner(cfg))
    pm.publish(worker_learner.state_dict(), seq=0, step=0)
    x = torch.randn(3, DIM)
    want = (pm.predict(x)[0].argmax(1) + 1) % N_CLASSES
    assert pm.fast_update(torch.tensor([1, 2]), Batch(x[:2], want[:2]))
    held, late = [], []
    plain = Memo.update_memory

    def update_memory(self, batch):
        held.append(pm.lock.locked())
        plain(self, batch)
        if self is not pm.current and not late and not pm.lock.locked():  # a feedback arriving mid-publish
            late.append(True)
            assert pm.fast_update(torch.tensor([3]), Batch(x[2:], want[2:]))

    monkeypatch.setattr(Memo, "update_memory", update_memory)
    pm.publish(worker_learner.state_dict(), seq=0, step=0)
    assert held[0] is False  # the replay of what was pending ran without the lock
    assert late and torch.equal(pm.current.keys, x) and torch.equal(pm.current.vals, want)  # 1, 2, then 3
    assert torch.equal(pm.predict(x)[0].argmax(1), want)
    assert [s.tolist() for s, _ in pm._fast] == [[1, 2], [3]]


def test_feedback_corrects_the_next_prediction(memo, service):
    svc = service(learner={"name": "memo_test"})
    assert svc.health()["fast_path"]
    x = torch.randn(4, DIM)
    wrong = (torch.from_numpy(__import__("numpy").array(svc.predict(x.numpy())["labels"])) + 1) % N_CLASSES
    out = svc.feedback(parse_feedback({"inputs": x.tolist(), "labels": wrong.tolist()}, svc.cfg))
    assert out["correct"] == [0, 0, 0, 0]  # scored by the model before it learned these rows
    assert svc.predict(x.numpy())["labels"] == wrong.tolist()  # no wait for the worker
    assert svc.worker.wait_published(4, timeout=30)
    assert live_digest(svc) == scratch_digest(svc)


def test_drift_alarm_is_journaled_and_triggers_the_drift_response(memo, service):
    svc = service(learner={"name": "memo_test"}, train={"lr": 0.1}, drift_delta=0.002)
    x, y = stream(400, seed=1)
    feed(svc, x, y, per=8)
    x2, y2 = stream(400, seed=2, remap=[1, 2, 0])  # the concept changes: every label moves
    feed(svc, x2, y2, per=8)
    kinds = [e.kind for e in svc.log.journal()]
    assert svc.worker.drift_alarms >= 1 and kinds.count("drift") == svc.worker.drift_alarms
    assert svc.drift_alarms.value() == svc.worker.drift_alarms
    assert svc.worker.learner.drifts == svc.worker.drift_alarms
    assert live_digest(svc) == scratch_digest(svc)  # replay applies the journaled drift responses


# -- replay import ------------------------------------------------------------------------------------
def _write_toml(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text(f'[learner]\nname = "er"\n[model]\nhidden = [8]\ninput_shape = [{DIM}]\nn_classes = {N_CLASSES}\n'
                    '[serve]\ndata_dir = "data"\nthreads = 0\nbatch_size = 8\n')
    return path


def test_replay_file_goes_through_the_service(tmp_path, capsys):
    from lifelong.cli.serve import main

    x, y = stream(60)
    lines = [json.dumps({"inputs": x[i:i + 6].tolist(), "labels": y[i:i + 6].tolist(),
                         "event_ids": [f"r{j}" for j in range(i, i + 6)]}) for i in range(0, 60, 6)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    cfg = _write_toml(tmp_path)
    main(["--config", str(cfg), "--replay", str(tmp_path / "events.jsonl"), "--curve", str(tmp_path / "c.json")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["new_events"] == 60 and summary["last_seq"] == 60
    assert len(json.loads((tmp_path / "c.json").read_text())["correct"]) == 60
    main(["--config", str(cfg), "--replay", str(tmp_path / "events.jsonl")])  # the same ids again: idempotent
    assert json.loads(capsys.readouterr().out)["duplicates"] == 60
    main(["--config", str(cfg), "--verify"])
    assert "ok: identical" in capsys.readouterr().out


def test_replay_file_with_a_bad_line_imports_nothing(tmp_path, capsys):
    from lifelong.cli.serve import main

    x, y = stream(12)
    lines = [json.dumps({"inputs": x[:6].tolist(), "labels": y[:6].tolist()}),
             json.dumps({"inputs": x[6:].tolist(), "labels": [9] * 6})]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["--config", str(_write_toml(tmp_path)), "--replay", str(tmp_path / "events.jsonl")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "unknown label 9" in err
    assert not (tmp_path / "data").exists()  # validated before the service (and its log) was created
