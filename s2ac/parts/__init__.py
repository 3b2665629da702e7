"""The parts an actor-critic is composed of: a critic (:mod:`s2ac.parts.critics`), a temperature
(:mod:`s2ac.parts.temperature`) and the optimisation primitives they share (:mod:`s2ac.parts.base`).

Dependencies run one way: ``nets`` -> ``parts`` -> ``agents``. A part never imports an agent; the
actor sees the critic only through its ``q`` function.
"""
