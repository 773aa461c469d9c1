"""MANN and the black-box sequence learner: instance accuracy, memory use, predict, bad input."""

import pytest
import torch

from metarl.cli import main
from metarl.errors import UsageError
from metarl.fewshot.mann import MANN, MANNConfig, SequenceClassifier, instance_numbers
from metarl.registry import load_config
from metarl.trainer import build_run
from tests.synthetic import pattern_tasks

SMALL = {"hidden_size": 32, "memory_slots": 16, "memory_width": 8, "memory_heads": 1}


def learner(
    core: str, seed: int = 0, ways: int = 2, lr: float = 0.01, read_before_write: bool = True
) -> MANN:
    cfg = MANNConfig(core=core, outer_lr=lr, read_before_write=read_before_write, **SMALL)
    torch.manual_seed(seed)
    return MANN(cfg, SequenceClassifier(cfg, 16, ways), torch.device("cpu"), seed)


def test_instance_numbers_count_earlier_items_of_the_class():
    labels = torch.tensor([[2, 0, 2, 2, 1, 0]])
    assert instance_numbers(labels, 3).tolist() == [[0, 0, 1, 2, 0, 1]]


@pytest.mark.parametrize(
    ("core", "iterations", "read_before_write"),
    [("lstm", 150, True), ("memory", 100, True), ("memory", 100, False)],
)
def test_learns_above_chance_on_patterns_it_never_saw(core, iterations, read_before_write):
    """2-way sequences of fresh random patterns: from the 2nd instance on, only binding the
    labels shown in the sequence beats 50%; 800 held-out predictions per instance. Both
    memory orders."""
    m = learner(core, read_before_write=read_before_write)
    gen = torch.Generator().manual_seed(0)
    test = pattern_tasks(200, 2, 4, 2, torch.Generator().manual_seed(1))
    before = m.adaptation_curve(test, 3)[1:].mean()
    for _ in range(iterations):
        m.meta_step(pattern_tasks(32, 2, 4, 2, gen))
    after = m.adaptation_curve(test, 3)
    assert after.shape == (4, 200)
    assert abs(before - 0.5) < 0.06
    assert after[1:].mean() > 0.58, after.mean(1)


def test_classifier_memory_writes_go_to_least_used_slots_and_reads_come_first():
    """The classifier's use of the shared memory: with the write gate shut (always the
    least-used slot), a sequence of k < slots steps fills k distinct slots, in slot order
    (ties of zero usage go to the lower index), and a step's read never sees its own write."""
    m = learner("memory")
    core = m.model.core
    with torch.no_grad():
        gate = core.interface.bias.view(core.heads, core.width + 2)
        gate[:, -1] = -30.0  # sigmoid(-30) ~ 0: write weights = least-used one-hot
    x = torch.rand(1, 5, 16, generator=torch.Generator().manual_seed(0))
    prev = torch.tensor([[-1, 0, 1, 1, 0]])
    state = m.model.initial_state(1)
    for t in range(5):
        before, usage = state.memory.clone(), state.usage.clone()
        _, state = m.model(x[:, t : t + 1], prev[:, t : t + 1], state)
        written = (state.memory - before).abs().sum(-1)[0] > 1e-4
        assert written.nonzero().flatten().tolist() == [t]
        expected = torch.einsum("bhn,bnw->bhw", state.read_weights, before)
        torch.testing.assert_close(state.reads, expected)
        # usage: gamma * previous + read weights + write weights (one-hot on slot t)
        write = torch.nn.functional.one_hot(torch.tensor([t]), 16).float()
        torch.testing.assert_close(
            state.usage, core.gamma * usage + state.read_weights.sum(1) + write, atol=1e-5, rtol=0
        )


def test_paper_order_binds_the_late_label_to_the_slot_of_its_image():
    """`read_before_write=False` (Santoro et al.'s order): a step reads the memory after its
    own write, so its sharpest read is the slot it has just filled; with the write gate open
    the next step writes where the previous step read, i.e. into that same slot, which is
    how the label arriving one step late is added to the slot of the image it belongs to."""
    cfg = MANNConfig(core="memory", read_before_write=False, **SMALL)
    torch.manual_seed(0)
    model = SequenceClassifier(cfg, 16, 2)
    core = model.core
    assert not core.read_before_write
    bias = core.interface.bias.view(core.heads, core.width + 2)
    x = torch.rand(1, 2, 16, generator=torch.Generator().manual_seed(0))
    state = model.initial_state(1)
    with torch.no_grad():
        bias[:, -2] = 10.0  # key strength 1 + softplus(10): sharp reads
        bias[:, -1] = -30.0  # step 0: write gate shut, the least-used slot (slot 0)
        _, state = model(x[:, :1], torch.tensor([[-1]]), state)
        assert state.read_weights[0, 0].argmax().item() == 0  # reads what it just wrote
        assert state.read_weights[0, 0, 0] > 0.9
        bias[:, -1] = 30.0  # step 1: gate open, write where step 0 read
        before = state.memory.clone()
        _, state = model(x[:, 1:], torch.tensor([[1]]), state)
    change = (state.memory - before).abs().sum(-1)[0]
    assert change.argmax().item() == 0
    assert change[1:].sum() < 0.1 * change[0]


def test_predict_gives_probabilities_and_is_a_pure_function():
    m = learner("memory", ways=3)
    ep = pattern_tasks(1, 3, 2, 2, torch.Generator().manual_seed(2))
    p1 = m.predict(ep.support_x[0], ep.support_y[0], ep.query_x[0], 3)
    m.meta_step(pattern_tasks(4, 3, 2, 2, torch.Generator().manual_seed(3)))  # moves generators
    m2 = learner("memory", ways=3)
    p2 = m2.predict(ep.support_x[0], ep.support_y[0], ep.query_x[0], 3)
    assert p1.shape == (6, 3)
    torch.testing.assert_close(p1.sum(-1), torch.ones(6))
    torch.testing.assert_close(p1, p2, rtol=0, atol=0)
    # a query's answer depends on the support, not on the other queries
    alone = m2.predict(ep.support_x[0], ep.support_y[0], ep.query_x[0, :1], 3)
    torch.testing.assert_close(alone[0], p2[0])
    with pytest.raises(UsageError, match="too few"):
        m2.predict(ep.support_x[0], ep.support_y[0], ep.query_x[0], 4)


def test_seeded_runs_repeat_and_resume_is_exact():
    tasks = [pattern_tasks(4, 2, 3, 1, torch.Generator().manual_seed(i)) for i in range(4)]
    a, b = learner("memory"), learner("memory")
    la = [a.meta_step(t)["loss"] for t in tasks]
    lb = [b.meta_step(t)["loss"] for t in tasks[:2]]
    c = learner("memory", seed=5)
    c.load_state_dict(b.state_dict())
    lb += [c.meta_step(t)["loss"] for t in tasks[2:]]
    assert la == lb
    torch.testing.assert_close(a.adaptation_curve(tasks[0], 2), c.adaptation_curve(tasks[0], 2))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.shots=0", "task.shots=0 is out of range; use an integer >= 1"),
        ("learner.memory_slots=4", "task.ways=5 is more than learner.memory_slots=4"),
    ],
)
def test_bad_sequence_settings_exit_2_with_one_line(
    override, message, tmp_path, capsys, omniglot_dir
):
    argv = ["train", "omniglot_mann_5w", f"task.data_dir={omniglot_dir}", override]
    rc = main([*argv, "device=cpu", "--run-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err


def test_omniglot_sequences_have_every_class_ten_times(omniglot_dir, tmp_path):
    cfg = load_config("omniglot_mann_5w", [f"task.data_dir={omniglot_dir}", "device=cpu"])
    run = build_run(cfg, tmp_path)
    tasks = run.distribution.sample("test", 3, run.generator)
    assert tasks.support_x.shape == (3, 50, 1, 20, 20)
    curve = run.learner.adaptation_curve(tasks, 20)
    assert curve.shape == (10, 3)  # instances 1..10: budgets 0..9 whatever max_budget asks
    _, y, prev = run.learner._sequence(tasks.support_x, tasks.support_y, run.learner.eval_generator)
    assert (prev[:, 0] == -1).all() and (prev[:, 1:] == y[:, :-1]).all()
    assert (torch.bincount(y[0], minlength=5) == 10).all()


def test_the_shipped_config_uses_the_papers_order_and_old_runs_keep_theirs():
    """The shipped MANN writes then reads (Santoro et al.); a config without the key (a run
    directory written before the field) keeps the classifier's old order, read first."""
    assert load_config("omniglot_mann_5w").learner["read_before_write"] is False
    assert MANNConfig().read_before_write is True
