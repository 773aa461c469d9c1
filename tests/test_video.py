"""Videos of adapted behaviour: GIF encoding, TensorBoard round trip, MuJoCo rendering, the
learners' `record`, and the trainer writing `adapt/video` for MuJoCo tasks only."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.errors import UsageError
from metarl.logger import RunLogger, encode_gif

pytest.importorskip("mujoco")

from agents.rollout import make_batched_env  # noqa: E402
from agents.video import record_episodes, side_by_side  # noqa: E402
from envs.mujoco import SlopeDistribution  # noqa: E402
from envs.mujoco.batched import BatchedMujocoEnv  # noqa: E402
from envs.mujoco.locomotion import HalfCheetahTerrainEnv  # noqa: E402
from envs.tensor import Navigation2DDistribution  # noqa: E402
from metarl import registry  # noqa: E402
from metarl.cli import main  # noqa: E402
from metarl.registry import load_config  # noqa: E402
from metarl.trainer import train  # noqa: E402

CPU = torch.device("cpu")
TINY = [
    "device=cpu",
    "train.iterations=1",
    "train.num_tasks=2",
    "train.eval_interval=0",
    "eval.final_num_tasks=2",
    "eval.batch_tasks=2",
    "eval.max_budget=1",
]


def _gif_frames(data: bytes) -> list[np.ndarray]:
    im = Image.open(io.BytesIO(data))
    frames = []
    for i in range(im.n_frames):
        im.seek(i)
        frames.append(np.asarray(im.convert("RGB")))
    return frames


def test_gif_round_trips_through_tensorboard_event_file(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 250)]
    frames = np.zeros((4, 6, 8, 3), np.uint8)
    for i, c in enumerate(colours):
        frames[i] = c
    logger = RunLogger(tmp_path, "return", "steps")
    gif = logger.video("adapt/video", frames, step=7)
    logger.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    (event,) = acc.Images("adapt/video")
    assert event.step == 7 and (event.width, event.height) == (8, 6)
    assert event.encoded_image_string == gif
    decoded = _gif_frames(event.encoded_image_string)
    assert len(decoded) == 4  # every frame kept, in order, colours exact (4 colours < 256)
    for got, want in zip(decoded, frames, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="uint8"):
        encode_gif(frames.astype(np.float32))


def test_side_by_side_pads_the_shorter_clip_with_its_last_frame():
    a = np.full((3, 2, 2, 3), 10, np.uint8)
    b = np.stack([np.full((2, 3, 3), v, np.uint8) for v in (20, 30)])
    out = side_by_side([a, b])
    assert out.shape == (3, 2, 5, 3)
    np.testing.assert_array_equal(out[:, :, :2], a)
    np.testing.assert_array_equal(out[2, :, 2:], b[1])  # held
    with pytest.raises(UsageError):
        side_by_side([])


def test_render_shows_the_task_and_follows_the_robot():
    flat = HalfCheetahTerrainEnv.default_task
    hill = {**flat, "hill_center": [1.5], "hill_height": [0.5], "hill_width": [0.6]}
    env = BatchedMujocoEnv("metarl/HalfCheetahTerrain-v0", 1, num_threads=1)
    env.reset(seed=0, options={"tasks": flat})
    img_flat = env.render_copy(0)
    assert img_flat.shape == (120, 160, 3) and img_flat.dtype == np.uint8
    assert img_flat.std() > 10  # a scene, not a blank buffer
    env.reset(seed=0, options={"tasks": hill})
    # a new task rewrites the height field; the renderer must show the new one
    img_hill = env.render_copy(0)
    assert np.abs(img_hill.astype(int) - img_flat.astype(int)).mean() > 1
    with pytest.raises(UsageError, match="out of range"):
        env.render_copy(1)
    env.close()
    # the tracking camera keeps the cheetah in view: its tan body pixels stay in the middle
    env = BatchedMujocoEnv("metarl/HalfCheetahSlope-v0", 1, num_threads=1)
    env.reset(seed=0, options={"tasks": {"angle_deg": -25.0}})  # steep downhill: it slides away

    def body_pixels(img: np.ndarray) -> tuple[int, int]:
        i = img.astype(int)
        tan = (i[..., 0] - i[..., 2] > 40) & (i[..., 0] > 120)
        return int(tan[:, 40:120].sum()), int(tan.sum())  # middle half, whole image

    middle, whole = body_pixels(env.render_copy(0))
    assert middle == whole > 50
    for _ in range(150):
        env.step(np.zeros((1, 6)))
    assert abs(env._qpos[0, 0]) > 5  # it slid more than 5 m down the slope ...
    middle, whole = body_pixels(env.render_copy(0))
    assert middle == whole > 50  # ... and is still all in the middle of the picture
    env.close()


def test_record_episodes_films_copy_zero_of_the_chosen_episodes():
    from agents.policies import GaussianMLPPolicy
    from agents.rollout import MLPActor

    dist = SlopeDistribution()
    env = make_batched_env(dist, 1, 1, CPU, horizon=9)
    policy = GaussianMLPPolicy(17, 6, [8])
    actor = MLPActor(policy, torch.Generator().manual_seed(0))
    tasks = dist.sample("test", 1, torch.Generator().manual_seed(0))
    clips = record_episodes(env, tasks, actor, 3, [0, 2], every=2)
    assert [c.shape for c in clips] == [(5, 120, 160, 3)] * 2  # steps 0, 2, 4, 6, 8
    assert not np.array_equal(clips[0], clips[1])
    with pytest.raises(UsageError, match="episodes to record"):
        record_episodes(env, tasks, actor, 3, [3])
    nav = make_batched_env(Navigation2DDistribution(horizon=5), 1, 1, CPU)
    with pytest.raises(UsageError, match="no renderer"):
        nav.render(0)
    env.close()


@pytest.mark.parametrize(
    "name, overrides",
    [
        (
            "halfcheetah_slope_maml_trpo",
            ["learner.episodes_per_task=2", "learner.hidden_sizes=[8]"],
        ),
        ("halfcheetah_slope_rl2", ["learner.episodes_per_trial=2", "learner.hidden_size=8"]),
    ],
)
def test_learner_record_is_before_beside_after_and_leaves_evaluation_alone(name, overrides):
    cfg = load_config(name, ["device=cpu", "learner.horizon=8", *overrides])
    dist = registry.build_distribution(cfg, CPU)
    learner = registry.build_learner(cfg, dist, CPU)
    tasks = dist.sample("test", 2, torch.Generator().manual_seed(1))
    gen = learner.eval_generator
    state = gen.get_state().clone()
    video = learner.record(tasks, width=64, height=48)
    assert video.shape == (4, 48, 128, 3) and video.dtype == np.uint8  # 8 steps, every 2nd
    assert torch.equal(gen.get_state(), state)
    left, right = video[..., :64, :], video[..., 64:, :]
    assert not np.array_equal(left, right)  # adapted (or later-episode) behaviour differs
    # env noise comes from the run's generators too: the same learner films the same video
    assert np.array_equal(learner.record(tasks, width=64, height=48), video)


def test_trainer_logs_the_video_for_mujoco_tasks_only(tmp_path, capsys):
    tiny = TINY
    cfg = load_config(
        "halfcheetah_slope_maml_trpo",
        [*tiny, "learner.episodes_per_task=2", "learner.horizon=6", "learner.hidden_sizes=[8]"],
    )
    train(cfg, tmp_path / "slope", progress=False)
    gif = (tmp_path / "slope" / "adapted.gif").read_bytes()
    acc = EventAccumulator(str(tmp_path / "slope"), size_guidance={"images": 0})
    acc.Reload()
    (event,) = acc.Images("adapt/video")
    assert event.encoded_image_string == gif and event.step == 1
    assert len(_gif_frames(gif)) == 3 and (event.width, event.height) == (320, 120)
    # `metarl eval --split test_beyond` films a slope beyond the training range
    out = tmp_path / "beyond.json"
    rc = main(["eval", str(tmp_path / "slope"), "--split", "test_beyond", "--out", str(out)])
    assert rc == 0
    assert json.loads(out.read_text())["video"] == "adapted_test_beyond.gif"
    beyond = (tmp_path / "slope" / "adapted_test_beyond.gif").read_bytes()
    assert len(_gif_frames(beyond)) == 3 and beyond != gif
    assert "Video:" in capsys.readouterr().out

    cfg = load_config(
        "halfcheetah_slope_maml_trpo",
        [*tiny, "learner.episodes_per_task=2", "learner.horizon=6", "eval.video=false"],
    )
    train(cfg, tmp_path / "off", progress=False)
    assert not (tmp_path / "off" / "adapted.gif").exists()

    cfg = load_config("navigation_maml_trpo", [*tiny, "learner.episodes_per_task=2"])
    train(cfg, tmp_path / "nav", progress=False)
    assert not (tmp_path / "nav" / "adapted.gif").exists()


def test_a_rendering_failure_costs_the_video_not_the_run(tmp_path, monkeypatch, capsys):
    from agents.maml_rl import MAMLRL

    def broken(self, tasks, width=160, height=120):
        raise RuntimeError("an OpenGL platform library has not been loaded\nmore detail")

    monkeypatch.setattr(MAMLRL, "record", broken)
    cfg = load_config(
        "halfcheetah_slope_maml_trpo",
        [
            *TINY,
            "learner.episodes_per_task=2",
            "learner.horizon=4",
            "learner.hidden_sizes=[8]",
        ],
    )
    results = train(cfg, tmp_path, progress=False)
    assert results["iterations"] == 1 and (tmp_path / "results.json").exists()
    assert not (tmp_path / "adapted.gif").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("metarl: warning: no video of adapted behaviour (an OpenGL")
