"""Probe: fastest way to train R independent small BiLSTM classifiers as ONE compiled program.

One measurement per process (backend chosen by the sub-command):

    python benchmarks/probe_stacked.py jax  FORM --R 10 [--steps 100 --reps 3 --merge sum --threads 2]
    python benchmarks/probe_stacked.py tf   FORM --R 10 [--xla 1 ...]
    python benchmarks/probe_stacked.py kjax --R 10        # vmap of Keras stateless step (today's engine style)
    python benchmarks/probe_stacked.py keras-tf --R 1     # plain Keras model, train_on_batch / tape loop
    python benchmarks/probe_stacked.py check-jax|check-tf [FORM]   # loss vs plain Keras after 50 steps
    python benchmarks/probe_stacked.py real-jax|real-tf   # B=64 T=100 F=8 U=64 concat, one label per sequence

JAX FORMs (letters combine): scan = lax.scan over T, unroll = python loop over T,
  +dir = both directions stacked as 2R copies, +hoist = input projection hoisted,
  +bcast = recurrent matmul as broadcast-multiply-sum, vmap = jax.vmap of a single-copy step.
  e.g. J1=scan J2=unroll J3=unroll+dir J4=unroll+hoist, best guess unroll+dir+hoist.
TF FORMs: unroll (T1, einsum), +mm (T2, tf.linalg.matmul), +dir +hoist (T3), +var (T4: tf.Variables
  + assign instead of loop-carried params).

Card workload: BiLSTM U=20/direction, x (B=32,T=10,F=1), per-step sigmoid head, BCE over B*T, Adam 1e-3.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

B1, B2, EPS, LR = 0.9, 0.999, 1e-7, 1e-3


def arguments():
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("form", nargs="?", default="unroll+dir+hoist")
    p.add_argument("--R", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--merge", default="sum")
    p.add_argument("--B", type=int, default=32)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--F", type=int, default=1)
    p.add_argument("--U", type=int, default=20)
    p.add_argument("--xla", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="1: single-threaded runtime")
    p.add_argument("--seq", action="store_true", help="one label per sequence (last step)")
    return p.parse_args()


def make_data(steps, R, B, T, F, seed=0, seq=False):
    rng = np.random.default_rng(seed)
    x = rng.random((steps, R, B, T, F), dtype=np.float32)
    y = (np.cumsum(x.sum(-1), -1) >= T * F / 4).astype(np.float32)  # (steps,R,B,T)
    if seq:
        y = y[..., -1]  # (steps,R,B)
    return x, y


def init_params(R, F, U, M, seed=0):
    """Stacked initial weights: 'W','U','b' have a leading 2R axis (R forward copies then R backward)."""
    rng = np.random.default_rng(seed)
    G = 4 * U
    lim = np.sqrt(6 / (F + G))
    W = rng.uniform(-lim, lim, (2 * R, F, G)).astype(np.float32)
    Uk = (rng.standard_normal((2 * R, U, G)) * 0.2).astype(np.float32)
    b = np.zeros((2 * R, G), np.float32)
    b[:, U : 2 * U] = 1.0
    lim = np.sqrt(6 / (M + 1))
    Wd = rng.uniform(-lim, lim, (R, M)).astype(np.float32)
    bd = np.zeros((R,), np.float32)
    return dict(W=W, U=Uk, b=b, Wd=Wd, bd=bd)


def split_params(p, R):
    """Stacked (2R) layout -> per-direction layout."""
    return dict(
        Wf=p["W"][:R], Uf=p["U"][:R], bf=p["b"][:R], Wb=p["W"][R:], Ub=p["U"][R:], bb=p["b"][R:], Wd=p["Wd"], bd=p["bd"]
    )


CPU = {}


def timed(call, reps):
    """Minimum wall time over reps (the machine is shared: the minimum is the least disturbed);
    CPU['s'] = process CPU seconds of that repeat."""
    times, cpus = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if os.environ.get("PROBE_MEAN"):  # for simultaneous processes: the mean, not the luckiest repeat
        CPU["s"] = statistics.mean(cpus)
        return statistics.mean(times)
    CPU["s"] = cpus[times.index(min(times))]
    return min(times)


# ----------------------------------------------------------------------------------------- JAX


def jax_setup(threads):
    if threads == 1:
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    import jax

    jax.config.update("jax_platforms", "cpu")
    return jax


def jax_program(form, R, merge, seq=False):
    """Returns (params layout fn, chunk(state, X, Y) -> (state, losses)) for the given formulation."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    flags = set(form.split("+"))
    unroll = "unroll" in flags
    stackdir = "dir" in flags
    hoist = "hoist" in flags
    bcast = "bcast" in flags
    tanhgate = "tg" in flags
    bminor = "bm" in flags  # batch-minor layout: h (n,U,B), gates (n,4U,B)
    gax = 1 if bminor else -1  # gate axis

    def rec(h, Uk):
        if bminor:
            return jnp.einsum("nug,nub->ngb", Uk, h)
        if bcast:
            return jnp.sum(h[..., :, None] * Uk[:, None, :, :], axis=-2)
        return jnp.einsum("rbu,rug->rbg", h, Uk)

    def cell(z, c):
        if tanhgate:  # sigmoid(x) = 0.5 + 0.5 tanh(x/2): ONE tanh over all 4U gate columns
            U4 = z.shape[gax]
            U = U4 // 4
            scale = jnp.concatenate([jnp.full((2 * U,), 0.5), jnp.ones((U,)), jnp.full((U,), 0.5)]).astype(z.dtype)
            a = jnp.tanh(z * (scale[:, None] if bminor else scale))
            ai, af, g, ao = jnp.split(a, 4, axis=gax)
            c = (0.5 + 0.5 * af) * c + (0.5 + 0.5 * ai) * g
            h = (0.5 + 0.5 * ao) * jnp.tanh(c)
            return h, c
        i, f, g, o = jnp.split(z, 4, axis=gax)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, c

    manual = "man" in flags  # hand-written BPTT (jax.custom_vjp), weight grads as one einsum over T

    def _seq_fwd_impl(xs, Uk):
        """xs (T,n,B,4U) projected inputs incl. bias; returns hs and the residuals."""
        n, Bsz, G = xs.shape[1:]
        U = G // 4
        h0 = jnp.zeros((n, Bsz, U), xs.dtype)

        def step(carry, xt):
            h, c = carry
            z = xt + jnp.einsum("nbu,nug->nbg", h, Uk)
            i, f, g, o = jnp.split(z, 4, axis=-1)
            i, f, o, g = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jax.nn.sigmoid(o), jnp.tanh(g)
            c2 = f * c + i * g
            tc = jnp.tanh(c2)
            h2 = o * tc
            return (h2, c2), (h2, jnp.concatenate([i, f, g, o], -1), c, tc, h)

        if unroll:
            carry, outs = (h0, h0), []
            for t in range(xs.shape[0]):
                carry, o_ = step(carry, xs[t])
                outs.append(o_)
            res = tuple(jnp.stack(a) for a in zip(*outs))
        else:
            _, res = lax.scan(step, (h0, h0), xs)
        return res[0], res[1:]

    @jax.custom_vjp
    def lstm_seq(xs, Uk):
        return _seq_fwd_impl(xs, Uk)[0]

    def lstm_seq_fwd(xs, Uk):
        hs, res = _seq_fwd_impl(xs, Uk)
        return hs, (res, Uk)

    def lstm_seq_bwd(saved, dhs):
        (acts, cprev, tcs, hprev), Uk = saved
        n, Bsz, U = dhs.shape[1:]

        def step(carry, inp):
            dh_next, dc_next = carry
            dh_out, a, cp, tc = inp
            i, f, g, o = jnp.split(a, 4, axis=-1)
            dh = dh_out + dh_next
            do = dh * tc
            dc = dc_next + dh * o * (1 - tc * tc)
            dz = jnp.concatenate(
                [dc * g * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - g * g), do * o * (1 - o)], -1
            )
            return (jnp.einsum("nbg,nug->nbu", dz, Uk), dc * f), dz

        zero = jnp.zeros((n, Bsz, U), dhs.dtype)
        if unroll:
            carry, dzs = (zero, zero), [None] * dhs.shape[0]
            for t in range(dhs.shape[0] - 1, -1, -1):
                carry, dzs[t] = step(carry, (dhs[t], acts[t], cprev[t], tcs[t]))
            dz = jnp.stack(dzs)
        else:
            _, dz = lax.scan(step, (zero, zero), (dhs, acts, cprev, tcs), reverse=True)
        return dz, jnp.einsum("tnbu,tnbg->nug", hprev, dz)

    lstm_seq.defvjp(lstm_seq_fwd, lstm_seq_bwd)

    def direction(x, W, Uk, b, reverse):
        """x (n,B,T,F) -> hidden states (T,n,B,U) in time order."""
        n, Bsz, T, _ = x.shape
        if manual:
            xs = jnp.einsum("nbtf,nfg->tnbg", x, W) + b[None, :, None, :]
            if reverse:
                return lstm_seq(xs[::-1], Uk)[::-1]
            return lstm_seq(xs, Uk)
        U = Uk.shape[1]
        hshape = (n, U, Bsz) if bminor else (n, Bsz, U)
        h = jnp.zeros(hshape, x.dtype)
        c = jnp.zeros(hshape, x.dtype)
        if hoist and bminor:
            xs = jnp.einsum("nbtf,nfg->tngb", x, W) + b[None, :, :, None]
        elif hoist:
            xs = jnp.einsum("nbtf,nfg->tnbg", x, W) + b[None, :, None, :]
        else:
            xs = jnp.transpose(x, (2, 0, 1, 3))

        def step(carry, xt):
            h, c = carry
            if hoist:
                z = xt
            elif bminor:
                z = jnp.einsum("nbf,nfg->ngb", xt, W) + b[:, :, None]
            else:
                z = jnp.einsum("nbf,nfg->nbg", xt, W) + b[:, None, :]
            h, c = cell(z + rec(h, Uk), c)
            return (h, c), h

        if unroll:
            outs = [None] * T
            order = range(T - 1, -1, -1) if reverse else range(T)
            for t in order:
                (h, c), outs[t] = step((h, c), xs[t])
            return jnp.stack(outs)
        _, hs = lax.scan(step, (h, c), xs, reverse=reverse)
        return hs

    def logits_of(p, x):
        """x (R,B,T,F) -> logits (T,R,B) or (R,B) for seq."""
        if stackdir:
            x2 = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
            hs = direction(x2, p["W"], p["U"], p["b"], False)
            hf, hb = hs[:, :R], hs[::-1, R:]
        else:
            hf = direction(x, p["Wf"], p["Uf"], p["bf"], False)
            hb = direction(x, p["Wb"], p["Ub"], p["bb"], True)
        if seq:
            hf, hb = hf[-1:], hb[:1]
        if merge == "sum":
            m = hf + hb
        elif merge == "mul":
            m = hf * hb
        elif merge == "ave":
            m = (hf + hb) / 2
        else:
            m = jnp.concatenate([hf, hb], axis=2 if bminor else -1)
        head = "trmb,rm->trb" if bminor else "trbm,rm->trb"
        out = jnp.einsum(head, m, p["Wd"]) + p["bd"][None, :, None]
        return out[0] if seq else out

    def loss_fn(p, x, y):
        l = logits_of(p, x)
        yt = y if seq else jnp.transpose(y, (2, 0, 1))
        bce = jnp.maximum(l, 0) - l * yt + jnp.log1p(jnp.exp(-jnp.abs(l)))
        per = jnp.mean(bce, axis=(1,) if seq else (0, 2))  # (R,)
        return jnp.sum(per), per

    def train_step(state, batch):
        p, m, v, t = state
        x, y = batch
        (_, per), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y)
        t = t + 1
        m = jax.tree.map(lambda m, g: m + (g - m) * (1 - B1), m, g)
        v = jax.tree.map(lambda v, g: v + (g * g - v) * (1 - B2), v, g)
        alpha = LR * jnp.sqrt(1 - B2**t) / (1 - B1**t)
        p = jax.tree.map(lambda p, m, v: p - alpha * m / (jnp.sqrt(v) + EPS), p, m, v)
        return (p, m, v, t), per

    def chunk(state, X, Y):
        return lax.scan(train_step, state, (X, Y))

    layout = (lambda p: p) if stackdir else (lambda p: split_params(p, R))
    return layout, chunk


def jax_state(p):
    import jax
    import jax.numpy as jnp

    p = jax.tree.map(jnp.asarray, p)
    z = jax.tree.map(jnp.zeros_like, p)
    return (p, z, jax.tree.map(jnp.zeros_like, p), jnp.float32(0))


def jax_chunk_call(form, R, merge, seq=False):
    """(layout, jitted chunk). 'vmap' forms: vmap of the single-copy (R=1) program over R."""
    import jax

    if form.startswith("vmap"):
        inner = form[5:] or "scan"
        layout1, chunk1 = jax_program(inner, 1, merge, seq)

        def layout_r(p):
            Rn = p["Wd"].shape[0]
            if "dir" in inner.split("+"):
                # per copy: W (2,F,G) = [forward, backward]
                def st(a):
                    return np.stack([a[:Rn], a[Rn:]], axis=1)

                return dict(W=st(p["W"]), U=st(p["U"]), b=st(p["b"]), Wd=p["Wd"], bd=p["bd"])
            return split_params(p, Rn)

        # single-copy arrays inside vmap lack the leading axis; the R=1 program expects one (n=1 or 2)
        def single_fixed(state, X, Y):
            if "dir" in inner.split("+"):

                def add(k, a):
                    return a if k in ("W", "U", "b") else a[None]
            else:

                def add(k, a):
                    return a[None]

            def lift(d):
                return {k: add(k, a) for k, a in d.items()}

            st = (lift(state[0]), lift(state[1]), lift(state[2]), state[3])
            st, per = chunk1(st, X[:, None], Y[:, None])

            def drop(d):
                return {k: (a if ("dir" in inner.split("+") and k in ("W", "U", "b")) else a[0]) for k, a in d.items()}

            return (drop(st[0]), drop(st[1]), drop(st[2]), st[3]), per[:, 0]

        call = jax.jit(
            jax.vmap(single_fixed, in_axes=((0, 0, 0, None), 1, 1), out_axes=((0, 0, 0, None), 1)), donate_argnums=0
        )
        return layout_r, call
    layout, chunk = jax_program(form, R, merge, seq)
    return layout, jax.jit(chunk, donate_argnums=0)


def run_jax(a):
    jax = jax_setup(a.threads)
    R = a.R
    M = 2 * a.U if a.merge == "concat" else a.U
    layout, call = jax_chunk_call(a.form, R, a.merge, a.seq)
    X, Y = make_data(a.steps, R, a.B, a.T, a.F, seq=a.seq)
    X, Y = jax.device_put(X), jax.device_put(Y)
    state = jax_state(layout(init_params(R, a.F, a.U, M)))
    t0 = time.perf_counter()
    state, per = call(state, X, Y)
    per.block_until_ready()
    compile_s = time.perf_counter() - t0
    holder = [state]

    def once():
        holder[0], per = call(holder[0], X, Y)
        per.block_until_ready()

    once()
    sec = timed(once, a.reps)
    return dict(
        backend="jax",
        form=a.form,
        R=R,
        merge=a.merge,
        threads=a.threads or "all",
        ms_per_copy_step=1000 * sec / (a.steps * R),
        ms_per_step_allR=1000 * sec / a.steps,
        compile_plus_first_s=round(compile_s, 2),
        loss_last=float(np.mean(np.asarray(per)[-1])),
        cpu_ms_per_copy_step=1000 * CPU["s"] / (a.steps * R),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
    )


def run_kjax(a):
    """Today's style: vmap over R of a Keras stateless_call/stateless_apply step, scanned over steps."""
    os.environ["KERAS_BACKEND"] = "jax"
    jax = jax_setup(a.threads)
    import jax.numpy as jnp
    import keras

    R = a.R
    models = []
    for r in range(R):
        keras.utils.set_random_seed(r)
        m = card_keras_model(keras, a)
        models.append(m)
    model = models[0]
    opt = keras.optimizers.Adam(LR)
    opt.build(model.trainable_variables)
    lossf = keras.losses.BinaryCrossentropy()

    ntv = [v.value for v in model.non_trainable_variables]

    def step(state, batch):
        tv, ov = state
        x, y = batch

        def lf(tv):
            out, _ = model.stateless_call(tv, ntv, x, training=True)
            return lossf(y[..., None] if not a.seq else y[:, None], out)

        l, g = jax.value_and_grad(lf)(tv)
        tv, ov = opt.stateless_apply(ov, g, tv)
        return (tv, ov), l

    def chunk(state, X, Y):
        return jax.lax.scan(step, state, (X, Y))

    call = jax.jit(jax.vmap(chunk, in_axes=(0, 1, 1), out_axes=(0, 1)), donate_argnums=0)
    tvs = [jnp.stack([m.trainable_variables[i].value for m in models]) for i in range(len(model.trainable_variables))]
    ovs = [jnp.stack([v.value] * R) for v in opt.variables]
    X, Y = make_data(a.steps, R, a.B, a.T, a.F, seq=a.seq)
    state = (tvs, ovs)
    t0 = time.perf_counter()
    state, per = call(state, X, Y)
    per.block_until_ready()
    compile_s = time.perf_counter() - t0
    holder = [state]

    def once():
        holder[0], per = call(holder[0], X, Y)
        per.block_until_ready()

    once()
    sec = timed(once, a.reps)
    return dict(
        backend="jax",
        form="keras-vmap (J5k)",
        R=R,
        ms_per_copy_step=1000 * sec / (a.steps * R),
        compile_plus_first_s=round(compile_s, 2),
    )


def card_keras_model(keras, a):
    layers = [
        keras.Input((a.T, a.F)),
        keras.layers.Bidirectional(keras.layers.LSTM(a.U, return_sequences=not a.seq), merge_mode=a.merge),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
    return keras.Sequential(layers)


def keras_to_stacked(models):
    """Keras Bidirectional(LSTM)+Dense weights of R models -> stacked 2R layout."""
    ws = [m.get_weights() for m in models]  # fk, fr, fb, bk, br, bb, dk, db
    W = np.concatenate([np.stack([w[0] for w in ws]), np.stack([w[3] for w in ws])])
    U = np.concatenate([np.stack([w[1] for w in ws]), np.stack([w[4] for w in ws])])
    b = np.concatenate([np.stack([w[2] for w in ws]), np.stack([w[5] for w in ws])])
    Wd = np.stack([w[6][:, 0] for w in ws])
    bd = np.stack([w[7][0] for w in ws])
    return dict(W=W, U=U, b=b, Wd=Wd, bd=bd)


def keras_losses(models, X, Y, a):
    """Train each Keras model with train_on_batch on its own batches; returns (steps, R) losses
    (step losses as Keras reports them: computed before that step's update) + final eval loss."""
    import keras

    steps, R = X.shape[:2]
    out = np.zeros((steps, R))
    for r, m in enumerate(models):
        m.compile(optimizer=keras.optimizers.Adam(LR), loss="binary_crossentropy")
        for s in range(steps):
            yy = Y[s, r][..., None] if not a.seq else Y[s, r][:, None]
            out[s, r] = m.train_on_batch(X[s, r], yy)
    return out


def check(a, backend):
    os.environ["KERAS_BACKEND"] = "jax" if backend == "jax" else "tensorflow"
    if backend == "jax":
        jax = jax_setup(0)
        jax.config.update("jax_default_matmul_precision", "highest")
    import keras

    R, steps = 4, 50
    models = []
    for r in range(R):
        keras.utils.set_random_seed(100 + r)
        models.append(card_keras_model(keras, a))
    p0 = keras_to_stacked(models)
    X, Y = make_data(steps, R, a.B, a.T, a.F, seed=7, seq=a.seq)
    if backend == "jax":
        layout, call = jax_chunk_call(a.form, R, a.merge, a.seq)
        _, per = call(jax_state(layout(p0)), X, Y)
        mine = np.asarray(per)
    else:
        mine = tf_train_losses(a, R, p0, X, Y)
    ref = keras_losses(models, X, Y, a)
    d = np.abs(mine - ref)
    return dict(
        check=backend,
        form=a.form,
        merge=a.merge,
        R=R,
        steps=steps,
        max_abs_diff_all_steps=float(d.max()),
        max_abs_diff_step50=float(d[-1].max()),
        loss_step1=ref[0].tolist(),
        loss_step50_keras=ref[-1].tolist(),
        loss_step50_mine=mine[-1].tolist(),
    )


# ------------------------------------------------------------------------------------------ TF


def tf_setup(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if threads == 1:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def tf_program(tf, form, R, merge, seq=False, steps=100):
    flags = set(form.split("+"))
    stackdir = "dir" in flags
    hoist = "hoist" in flags
    use_mm = "mm" in flags
    use_var = "var" in flags

    def rec(h, Uk):
        return tf.linalg.matmul(h, Uk) if use_mm else tf.einsum("rbu,rug->rbg", h, Uk)

    def inproj(x, W, b):  # x (n,B,T,F) -> (T,n,B,G)
        if use_mm:
            n, Bsz, T, F = x.shape
            xt = tf.transpose(x, (0, 2, 1, 3))  # n,T,B,F
            z = tf.linalg.matmul(tf.reshape(xt, (n, T * Bsz, F)), W)  # n, T*B, G
            z = tf.transpose(tf.reshape(z, (n, T, Bsz, -1)), (1, 0, 2, 3))
        else:
            z = tf.einsum("nbtf,nfg->tnbg", x, W)
        return z + b[None, :, None, :]

    def cell(z, c):
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return h, c

    def direction(x, W, Uk, b, reverse):
        n, Bsz, T, _ = x.shape
        U = Uk.shape[1]
        h = tf.zeros((n, Bsz, U))
        c = tf.zeros((n, Bsz, U))
        xs = inproj(x, W, b) if hoist else tf.transpose(x, (2, 0, 1, 3))
        outs = [None] * T
        order = range(T - 1, -1, -1) if reverse else range(T)
        for t in order:
            z = (
                xs[t]
                if hoist
                else (tf.linalg.matmul(xs[t], W) if use_mm else tf.einsum("nbf,nfg->nbg", xs[t], W)) + b[:, None, :]
            )
            h, c = cell(z + rec(h, Uk), c)
            outs[t] = h
        return tf.stack(outs)

    def loss_fn(p, x, y):
        if stackdir:
            x2 = tf.concat([x, tf.reverse(x, [2])], axis=0)
            hs = direction(x2, p["W"], p["U"], p["b"], False)
            hf, hb = hs[:, :R], tf.reverse(hs[:, R:], [0])
        else:
            hf = direction(x, p["Wf"], p["Uf"], p["bf"], False)
            hb = direction(x, p["Wb"], p["Ub"], p["bb"], True)
        if seq:
            hf, hb = hf[-1:], hb[:1]
        if merge == "sum":
            m = hf + hb
        elif merge == "mul":
            m = hf * hb
        elif merge == "ave":
            m = (hf + hb) / 2
        else:
            m = tf.concat([hf, hb], axis=-1)
        l = tf.einsum("trbm,rm->trb", m, p["Wd"]) + p["bd"][None, :, None]
        if seq:
            l, yt = l[0], y
        else:
            yt = tf.transpose(y, (2, 0, 1))
        bce = tf.maximum(l, 0.0) - l * yt + tf.math.log1p(tf.exp(-tf.abs(l)))
        per = tf.reduce_mean(bce, axis=(1,) if seq else (0, 2))
        return tf.reduce_sum(per), per

    def adam(p, m, v, g, t):
        alpha = LR * tf.sqrt(1 - B2**t) / (1 - B1**t)
        m2 = {k: m[k] + (g[k] - m[k]) * (1 - B1) for k in p}
        v2 = {k: v[k] + (g[k] * g[k] - v[k]) * (1 - B2) for k in p}
        p2 = {k: p[k] - alpha * m2[k] / (tf.sqrt(v2[k]) + EPS) for k in p}
        return p2, m2, v2

    if not use_var:

        def chunk(p, m, v, t, X, Y):
            S = X.shape[0]

            def body(s, p, m, v, t, losses):
                with tf.GradientTape() as tape:
                    tape.watch(list(p.values()))
                    total, per = loss_fn(p, X[s], Y[s])
                g = dict(zip(p.keys(), tape.gradient(total, list(p.values()))))
                t = t + 1.0
                p, m, v = adam(p, m, v, g, t)
                losses = losses.write(s, per)
                return s + 1, p, m, v, t, losses

            losses = tf.TensorArray(tf.float32, size=S)
            _, p, m, v, t, losses = tf.while_loop(lambda s, *_: s < S, body, (0, p, m, v, t, losses))
            return p, m, v, t, losses.stack()

        return chunk, None

    def make_var_chunk(pv, mv, vv, tv):
        def chunk(X, Y):
            S = X.shape[0]

            def body(s, losses):
                with tf.GradientTape() as tape:
                    total, per = loss_fn(pv, X[s], Y[s])
                ks = list(pv.keys())
                gl = tape.gradient(total, [pv[k] for k in ks])
                tv.assign_add(1.0)
                t = tv.read_value()
                alpha = LR * tf.sqrt(1 - B2**t) / (1 - B1**t)
                for k, g in zip(ks, gl):
                    mv[k].assign_add((g - mv[k]) * (1 - B1))
                    vv[k].assign_add((g * g - vv[k]) * (1 - B2))
                    pv[k].assign_sub(alpha * mv[k] / (tf.sqrt(vv[k]) + EPS))
                return s + 1, losses.write(s, per)

            losses = tf.TensorArray(tf.float32, size=S)
            _, losses = tf.while_loop(lambda s, *_: s < S, body, (0, losses))
            return losses.stack()

        return chunk

    return None, make_var_chunk


def tf_build(tf, a, R, p0, steps):
    layout = (lambda p: p) if "dir" in a.form.split("+") else (lambda p: split_params(p, R))
    p = {k: tf.constant(v) for k, v in layout(p0).items()}
    chunk, make_var = tf_program(tf, a.form, R, a.merge, a.seq, steps)
    if chunk is not None:
        fn = tf.function(chunk, jit_compile=bool(a.xla))
        state = [
            p,
            {k: tf.zeros_like(v) for k, v in p.items()},
            {k: tf.zeros_like(v) for k, v in p.items()},
            tf.constant(0.0),
        ]

        def call(X, Y):
            out = fn(*state, X, Y)
            state[:] = out[:4]
            return out[4]

        return call
    pv = {k: tf.Variable(v) for k, v in p.items()}
    mv = {k: tf.Variable(tf.zeros_like(v)) for k, v in p.items()}
    vv = {k: tf.Variable(tf.zeros_like(v)) for k, v in p.items()}
    tv = tf.Variable(0.0)
    return tf.function(make_var(pv, mv, vv, tv), jit_compile=bool(a.xla))


def tf_train_losses(a, R, p0, X, Y):
    tf = tf_setup(0)
    call = tf_build(tf, a, R, p0, X.shape[0])
    return call(tf.constant(X), tf.constant(Y)).numpy()


def run_tf(a):
    tf = tf_setup(a.threads)
    R = a.R
    M = 2 * a.U if a.merge == "concat" else a.U
    X, Y = make_data(a.steps, R, a.B, a.T, a.F, seq=a.seq)
    X, Y = tf.constant(X), tf.constant(Y)
    call = tf_build(tf, a, R, init_params(R, a.F, a.U, M), a.steps)
    t0 = time.perf_counter()
    per = call(X, Y).numpy()
    compile_s = time.perf_counter() - t0
    call(X, Y).numpy()
    sec = timed(lambda: call(X, Y).numpy(), a.reps)
    return dict(
        backend="tf",
        form=a.form,
        xla=a.xla,
        R=R,
        merge=a.merge,
        threads=a.threads or "all",
        ms_per_copy_step=1000 * sec / (a.steps * R),
        ms_per_step_allR=1000 * sec / a.steps,
        compile_plus_first_s=round(compile_s, 2),
        loss_last=float(np.mean(per[-1])),
        cpu_ms_per_copy_step=1000 * CPU["s"] / (a.steps * R),
    )


def run_keras_tf(a):
    """T5: one plain Keras model (TF backend): train_on_batch, and a tf.function tape loop."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    tf = tf_setup(a.threads)
    import keras

    keras.utils.set_random_seed(0)
    X, Y = make_data(a.steps, 1, a.B, a.T, a.F, seq=a.seq)
    X, Y = X[:, 0], Y[:, 0][..., None] if not a.seq else Y[:, 0][..., None]
    res = dict(backend="tf", form="keras (T5)", R=1)
    m = card_keras_model(keras, a)
    m.compile(optimizer=keras.optimizers.Adam(LR), loss="binary_crossentropy", jit_compile=bool(a.xla))
    m.train_on_batch(X[0], Y[0])

    def tob():
        for s in range(a.steps):
            m.train_on_batch(X[s], Y[s])

    res["train_on_batch_ms"] = 1000 * timed(tob, a.reps) / a.steps
    m2 = card_keras_model(keras, a)
    opt = keras.optimizers.Adam(LR)
    lossf = keras.losses.BinaryCrossentropy()
    opt.build(m2.trainable_variables)
    Xt, Yt = tf.constant(X), tf.constant(Y)

    @tf.function(jit_compile=bool(a.xla))
    def loop(Xt, Yt):
        def body(s, acc):
            with tf.GradientTape() as tape:
                l = lossf(Yt[s], m2(Xt[s], training=True))
            g = tape.gradient(l, m2.trainable_variables)
            opt.apply(g, m2.trainable_variables)
            return s + 1, acc + l

        return tf.while_loop(lambda s, acc: s < a.steps, body, (0, 0.0))[1]

    t0 = time.perf_counter()
    loop(Xt, Yt).numpy()
    res["tape_loop_compile_s"] = round(time.perf_counter() - t0, 2)
    res["tape_loop_ms"] = 1000 * timed(lambda: loop(Xt, Yt).numpy(), a.reps) / a.steps
    res["xla"] = a.xla
    return res


def main():
    a = arguments()
    if a.cmd in ("real-jax", "real-tf"):
        a.B, a.T, a.F, a.U, a.merge, a.seq, a.R = 64, 100, 8, 64, "concat", True, 1
        a.cmd = a.cmd[5:]
        a.steps = min(a.steps, 30)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = {
        "jax": run_jax,
        "tf": run_tf,
        "kjax": run_kjax,
        "keras-tf": run_keras_tf,
        "check-jax": lambda a: check(a, "jax"),
        "check-tf": lambda a: check(a, "tf"),
    }[a.cmd](a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
