"""Videos of evaluation episodes (``s2ac eval RUN --video DIR``) through Gymnasium's ``RecordVideo``.

Every env renders with ``render_mode="rgb_array"``: our multigoal envs draw the arena, goals,
walls and the agent's path (:func:`s2ac.envs.multigoal.render_rgb`); MuJoCo envs need an OpenGL
context, which without a display means EGL or OSMesa (``MUJOCO_GL``).
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium

VIDEO_EXTRA = "pip install 's2ac[video]' (moviepy)"
"""How to get the writer ``RecordVideo`` needs."""


def headless_gl() -> None:
    """Pick EGL for MuJoCo when there is no display and ``MUJOCO_GL`` is unset.

    MuJoCo reads ``MUJOCO_GL`` when it is first imported, so this must run before any MuJoCo env is
    made; GLFW, MuJoCo's default, needs a display.
    """
    if not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def recording_env(env_id: str, folder: Path, name_prefix: str) -> gymnasium.Env:
    """``env_id`` rendering to ``rgb_array``, wrapped in ``RecordVideo`` so that every episode becomes
    ``folder/{name_prefix}-episode-{i}.mp4``. ``ValueError`` with the cause and the fix if the env
    cannot render here or the video writer is missing."""
    from gymnasium.wrappers import RecordVideo

    from s2ac.envs import make_env

    try:
        env = make_env(env_id, render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
    except gymnasium.error.DependencyNotInstalled as err:
        raise ValueError(f"cannot render {env_id!r}: {err}") from err
    except Exception as err:  # OpenGL failures come as several types (FatalError, AttributeError, ...)
        gl = os.environ.get("MUJOCO_GL", "glfw")
        raise ValueError(
            f"cannot render {env_id!r} here (MUJOCO_GL={gl}: {type(err).__name__}: {err}); without a display "
            "MuJoCo needs MUJOCO_GL=egl (GPU drivers) or MUJOCO_GL=osmesa (libosmesa), or evaluate without --video"
        ) from err
    if frame is None or getattr(frame, "ndim", 0) != 3:
        env.close()
        raise ValueError(f"{env_id!r} does not render rgb_array frames, so it cannot be recorded")
    try:
        return RecordVideo(env, str(folder), episode_trigger=lambda _: True, name_prefix=name_prefix)
    except gymnasium.error.DependencyNotInstalled as err:
        env.close()
        raise ValueError(f"recording videos needs moviepy: {VIDEO_EXTRA}") from err


__all__ = ["VIDEO_EXTRA", "headless_gl", "recording_env"]
