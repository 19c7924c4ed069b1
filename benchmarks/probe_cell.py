"""Where a stacked LSTM step's time goes under JAX on one CPU core (README, Performance, row 8).

    taskset -c 0 python benchmarks/probe_cell.py

Times, at the card's program shapes (40 directional units = 20 BiLSTM-20 copies, batch 32,
T=10), a minimal hand-written JAX LSTM (not bilstm's engine): the stacked recurrent product
alone over the time loop, the forward pass, and forward + gradient; and the forward pass with
three sigmoids on the gate slices vs one sigmoid over all four gates.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

UNITS, STEPS = 20, 10


def lstm(fused: bool):
    def forward(x, kernel, recurrent, bias):
        def step(carry, x_t):
            h, c = carry
            z = jnp.matmul(x_t, kernel) + jnp.matmul(h, recurrent) + bias[:, None, :]
            if fused:
                s = jax.nn.sigmoid(z)
                i, f, o = s[..., :UNITS], s[..., UNITS : 2 * UNITS], s[..., 3 * UNITS :]
            else:
                z0, z1, _, z3 = jnp.split(z, 4, axis=-1)
                i, f, o = jax.nn.sigmoid(z0), jax.nn.sigmoid(z1), jax.nn.sigmoid(z3)
            c = f * c + i * jnp.tanh(z[..., 2 * UNITS : 3 * UNITS])
            h = o * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[1], x.shape[2], UNITS))
        return jax.lax.scan(step, (zeros, zeros), x)[1].sum()

    return forward


def products_only(x, kernel, recurrent, bias):
    def step(h, _):
        return jnp.tanh(jnp.matmul(h, recurrent)[..., :UNITS]), None

    return jax.lax.scan(step, jnp.zeros((x.shape[1], x.shape[2], UNITS)), None, length=STEPS)[0].sum()


def microseconds(function, arguments, repeats: int) -> float:
    compiled = jax.jit(function)
    jax.block_until_ready(compiled(*arguments))
    started = time.perf_counter()
    for _ in range(repeats):
        result = compiled(*arguments)
    jax.block_until_ready(result)
    return (time.perf_counter() - started) / repeats * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    for directions, batch in ((40, 32), (40, 1000)):
        x = jnp.asarray(rng.random((STEPS, directions, batch, 1), np.float32))
        kernel = jnp.asarray(rng.normal(0, 0.1, (directions, 1, 4 * UNITS)).astype(np.float32))
        recurrent = jnp.asarray(rng.normal(0, 0.1, (directions, UNITS, 4 * UNITS)).astype(np.float32))
        bias = jnp.zeros((directions, 4 * UNITS), jnp.float32)
        arguments = (x, kernel, recurrent, bias)
        repeats = 500 if batch < 100 else 20
        flop = 2 * directions * batch * UNITS * 4 * UNITS * STEPS
        alone = microseconds(products_only, arguments, repeats)
        print(f"D={directions} B={batch}: recurrent products alone {alone:.0f} us ({flop / alone / 1e3:.0f} GFLOP/s)")
        for fused in (False, True):
            name = "one sigmoid" if fused else "three sigmoids"
            forward = microseconds(lstm(fused), arguments, repeats)
            gradient = microseconds(jax.grad(lstm(fused), argnums=(1, 2, 3)), arguments, repeats)
            print(f"  {name}: forward {forward:.0f} us, forward + gradient {gradient:.0f} us")


if __name__ == "__main__":
    main()
