"""The composed actor-critic update: the order of its steps, the policy delay, and an agent subclass
that replaces the actor's sampler. Stub parts with counters give the hand-written expectation."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_helpers import random_batch
from tiny import HOPPER, tiny_config

from s2ac.agents import ALGOS, algo_spec
from s2ac.agents.common import CriticAgent
from s2ac.agents.sac import SACAgent
from s2ac.nets import GaussianHead
from s2ac.parts.actors import LOG_DENSITIES
from s2ac.parts.critics import NextActions
from s2ac.parts.temperature import Temperature
from s2ac.parts.update import ActorCriticUpdate


@flax.struct.dataclass
class StubState:
    critic_params: jax.Array
    critic_target: jax.Array
    critic_opt: jax.Array
    key: jax.Array
    step: jax.Array
    actor_params: jax.Array
    actor_opt: jax.Array
    log_alpha: jax.Array
    alpha_opt: jax.Array


class StubCritic:
    """Q is the critic's one number; a step adds 1; after_step adds the new critic to the target."""

    def __init__(self, log):
        self.log = log

    def q(self, params, obs, action):
        return jnp.broadcast_to(params, (2, *action.shape[:-1]))

    def step(self, params, target, opt, batch, next):
        self.log.append("critic")
        return params + 1.0, opt, {"next_action": next.action[0, 0]}

    def after_step(self, target, params):
        self.log.append("after_step")
        return target + params


class StubActor:
    """The next record holds the actor's number; a step adds 1 and reports the Q it was given."""

    fields = ("actor_params", "actor_opt")
    entropy_from = "step"

    def __init__(self, log):
        self.log = log

    def next(self, params, q_fn, batch, key, alpha):
        self.log.append("next")
        return NextActions(jnp.full((1, 1), params), lambda q: q)

    def next_metrics(self, next):
        return {}

    def step(self, params, opt, q_fn, obs, key, alpha):
        self.log.append("actor")
        return params + 1.0, opt, {"seen_q": q_fn(obs, obs)[0, 0], "entropy": jnp.zeros(())}


class StubTemperature:
    fields = ("log_alpha", "alpha_opt")
    steps = True

    def __init__(self, log):
        self.log = log

    def value(self, log_alpha):
        return log_alpha

    def report(self, log_alpha):
        return log_alpha

    def step(self, log_alpha, opt, entropy):
        self.log.append("temperature")
        return log_alpha + 1.0, opt, jnp.zeros(())


def stub_update(delay, log):
    return ActorCriticUpdate(StubCritic(log), StubActor(log), StubTemperature(log), delay)


def zero_state():
    z = jnp.zeros(())
    return StubState(z, z, z, jax.random.PRNGKey(0), jnp.zeros((), jnp.int32), z, z, z, z)


def test_steps_run_in_order_critic_actor_temperature_after_step():
    log = []
    stub_update(1, log)(zero_state(), random_batch(HOPPER, 4))
    assert log == ["next", "critic", "actor", "temperature", "after_step"]


def test_policy_delay_and_data_flow_match_the_hand_expectation():
    update, state = stub_update(2, []), zero_state()
    rows = []
    for _ in range(5):
        state, m = update(state, random_batch(HOPPER, 4))
        rows.append([float(x) for x in (state.critic_params, state.actor_params, state.log_alpha, state.critic_target)])
        rows[-1] += [float(m["next_action"]), float(m["seen_q"]), float(m["alpha"])]
    # By hand, update k = 0..4 with delay 2: the critic moves every time (c = k + 1); the actor and the
    # temperature at k = 0, 2, 4; the target adds each new critic (1, 3, 6, 10, 15); the next record
    # holds the actor before update k; the actor step sees the critic after update k (0 when skipped).
    expected = [
        [1, 1, 1, 1, 0, 1, 1],
        [2, 1, 1, 3, 1, 0, 1],
        [3, 2, 2, 6, 1, 3, 2],
        [4, 2, 2, 10, 2, 0, 2],
        [5, 3, 3, 15, 2, 5, 3],
    ]
    np.testing.assert_array_equal(np.array(rows), np.array(expected, float))
    assert int(state.step) == 5


class ZeroActionSAC(SACAgent):
    """A subclass with its own sampler: every draw is the box centre with log-density 0."""

    def sample_action(self, actor_params, obs, key):
        return jnp.zeros(obs.shape[:-1] + (self.spec.act_dim,)), jnp.zeros(obs.shape[:-1])


def test_a_subclass_sampler_drives_the_update_and_acting():
    agent = ZeroActionSAC(tiny_config("sac", auto_alpha=True), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    new, metrics = agent.update(state, random_batch(HOPPER, 16))
    # SAC's Gaussian gives a far-from-zero entropy; the subclass's log-density 0 gives exactly 0, and
    # the temperature step reads it: log_alpha moves by Adam's first step lr * sign(H - H_target).
    assert float(metrics["entropy"]) == 0.0
    expected = float(state.log_alpha) - agent.config.alpha_lr * np.sign(0.0 - agent.target_entropy)
    np.testing.assert_allclose(float(new.log_alpha), expected, rtol=1e-5)
    obs = random_batch(HOPPER, 3).obs
    np.testing.assert_array_equal(np.asarray(agent.act(new, obs, jax.random.PRNGKey(1), "random")), np.zeros((3, 3)))


@pytest.mark.parametrize("algo", ALGOS)
def test_every_registry_entry_names_the_parts_its_agent_is_built_from(algo):
    spec = algo_spec(algo)
    agent = spec.agent_class(tiny_config(algo), HOPPER)  # no compile: the parts are built, not run
    temperature = "fixed" if agent.temperature.stateless else "tunable"
    assert (agent.critic_part.name, agent.actor_part.name, temperature) == spec.parts
    assert (agent.follower and agent.follower.name) == spec.follower
    assert agent.actor_part.kind in LOG_DENSITIES


class OwnPiecesSAC(SACAgent):
    """A subclass that builds its own pieces (bypassing SAC's constructor), with its own objective and
    entropy metric: the shape of an agent that only swaps SAC's actor."""

    entropy_metric = "entropy_bound"
    log_density_kind = "lower_bound"

    def __init__(self, config, spec):
        CriticAgent.__init__(self, config, spec)
        self.renorm = False
        self.actor = GaussianHead(config.actor_hidden, spec.act_dim, config.activation)
        self.actor_tx = self.adam(config.actor_lr)
        self.temperature = Temperature.from_config(config, spec.act_dim)

    def policy_objective(self, action, log_prob, q_fn, obs, alpha):
        return jnp.mean(alpha * log_prob - jnp.mean(q_fn(obs, action), axis=0)), {"entropy_bound": jnp.asarray(7.0)}


def test_a_subclass_with_its_own_pieces_objective_and_entropy_metric():
    agent = OwnPiecesSAC(tiny_config("sac", auto_alpha=True), HOPPER)
    assert agent.actor_part.kind == "lower_bound"
    state = agent.init(jax.random.PRNGKey(0))
    new, metrics = agent.update(state, random_batch(HOPPER, 16))
    assert float(metrics["entropy_bound"]) == 7.0 and "entropy" not in metrics
    # The temperature read the subclass's metric: 7 > -3 = H_target, so log alpha falls by lr.
    np.testing.assert_allclose(float(new.log_alpha), float(state.log_alpha) - agent.config.alpha_lr, rtol=1e-5)
