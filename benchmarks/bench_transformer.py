"""Training-step throughput of CaptioningTransformer against the same model in PyTorch on the CPU.

    python benchmarks/bench_transformer.py            # the table and where the time goes (~2 minutes)
    python benchmarks/bench_transformer.py --quick    # fewer repetitions, a smoke run

Measures, in one process on one machine:
  a. a CaptioningTransformer training step (loss and every gradient, float32, dropout 0.1 on) at
     N=128, T=16 (captions of 17 tokens: <START>, 8-15 words, <END>, <NULL> padding), V=1004, W=256,
     2 layers, 4 heads, feed-forward 2048, input 512: captions/s. Its loss runs the last layer's
     feed-forward and the output layer only at the positions whose target is not <NULL> (about 80%
     here); ``--full-captions`` gives every caption 16 words, so that nothing is skipped;
  b. the same model in PyTorch (nn.Embedding, the sinusoidal table, nn.Linear projection,
     2 x nn.TransformerDecoderLayer(post-norm, ReLU, dropout 0.1, batch_first), nn.Linear output,
     cross-entropy summed over unmasked tokens and divided by N, backward; it computes every
     position), interleaved repetition by repetition with (a) so both see the same machine state;
  c. the fraction of this machine's float32 GEMM rate the numpy step reaches, counting the FLOPs of
     every matrix product it performs, and the GEMM floor: the time those products take at their own
     measured rates (each shape timed alone), beside the step; minor page faults per step (in a fresh
     process where only the numpy model has run);
  d. where the numpy step's time goes: each layer function's forward + backward timed alone at the
     step's shapes (weights made once, outside the timing; buffers reused as the model does), times
     the number of uses per step;
  e. greedy sampling of 1,000 captions of length 30 with cached keys/values.
Figures are medians after a warm-up. OpenBLAS's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides are
unset in this process (see _common.py), as on users' machines. PyTorch runs with as many threads as
numpy's BLAS (set OPENBLAS_NUM_THREADS=1 on a shared machine).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._common import (blas_threads, gemm_floor, interleaved_medians, machine_header,  # noqa: E402
                               faults_in_fresh_process, make_batch, make_vocab, matmul_gflops, median_time,
                               minor_faults_per_call,
                               products_flops, reexec_without_openblas_overrides, with_gradient_products)

# Run as a script, it re-executes itself without the OpenBLAS overrides (see _common); imported (by
# bench_gpu_transformer.py), it leaves the process alone.
unset = reexec_without_openblas_overrides() if __name__ == "__main__" else []

import numpy as np  # noqa: E402

from cs231n.classifiers.transformer import CaptioningTransformer  # noqa: E402
from cs231n import transformer_layers as tl  # noqa: E402
from cs231n.layers import softmax_loss_rows  # noqa: E402
from cs231n.rnn_layers import temporal_affine_backward, temporal_affine_forward  # noqa: E402

N, T, V, W, D, HEADS, LAYERS, F, P = 128, 16, 1004, 256, 512, 4, 2, 2048, 0.1


def step_products(K=N * T):
    """Every matrix product of one numpy training step, as (batch, m, k, n, calls).

    K: the positions whose target is not <NULL>; the numpy step runs the last layer's feed-forward and
    the output projection at those rows only (``CaptioningTransformer.loss``), a GPU step at all N*T.
    """
    NT, d = N * T, W // HEADS
    fwd = [(1, N, D, W, 1),                      # the image feature's projection to the memory token
           (1, NT, W, W, 4 * LAYERS),            # self-attention q, k, v and output projections
           (N * HEADS, T, d, T, LAYERS),         # scores q k^T, all heads
           (N * HEADS, T, T, d, LAYERS),         # weights @ v
           (1, N, W, W, LAYERS),                 # cross-attention v of the one memory token
           (1, NT, W, F, LAYERS - 1), (1, NT, F, W, LAYERS - 1),  # feed-forward, all positions
           (1, K, W, F, 1), (1, K, F, W, 1),     # the last layer's feed-forward, counted positions
           (1, K, W, V, 1)]                      # output projection
    # Backward: two products per forward product, each as large. With one key the cross-attention's
    # queries and key get no gradient (their projections are not computed), and its output is each
    # head's value projected by that head's rows of Wo, once per example, times the attention weights:
    cross = [(HEADS, N, d, W, LAYERS),           # forward: the values times their heads' rows of Wo
             (N, T, HEADS, W, LAYERS),           # forward: the weights (T, h) times those, per example
             (N, HEADS, T, W, LAYERS),           # backward: their gradient
             (HEADS, d, N, W, LAYERS),           # backward: Wo's gradient
             (HEADS, N, W, d, LAYERS)]           # backward: the values' gradient
    return with_gradient_products(fwd) + cross


def step_flops(K=N * T):
    """FLOPs (2 per multiply-add) of every matrix product in one numpy training step (K: see step_products)."""
    return products_flops(step_products(K))


def torch_step_fn(features, captions, seed=0, device="cpu", adam_lr=None):
    """The same model in PyTorch (cs231n's CaptioningTransformer built from torch.nn modules).

    ``device``: "cpu" or "gpu" (CUDA); ``adam_lr``: when set, each step ends with torch.optim.Adam's
    update (its default implementation), as a solver's step does.
    """
    import torch
    import torch.nn.functional as Fn

    torch.manual_seed(seed)
    torch.set_num_threads(blas_threads())
    dev = "cuda" if device == "gpu" else "cpu"
    embed = torch.nn.Embedding(V, W)
    proj = torch.nn.Linear(D, W)
    layers = torch.nn.ModuleList([
        torch.nn.TransformerDecoderLayer(W, HEADS, dim_feedforward=F, dropout=P, activation="relu",
                                         batch_first=True, norm_first=False) for _ in range(LAYERS)])
    out = torch.nn.Linear(W, V)
    modules = torch.nn.ModuleList([embed, proj, layers, out]).train().to(dev)
    pe = torch.from_numpy(tl.positional_encoding(T, W, np.float32)).to(dev)
    feats = torch.from_numpy(features).to(dev)
    cap = torch.from_numpy(captions.astype(np.int64)).to(dev)
    cin, cout = cap[:, :-1], cap[:, 1:]
    mask = (cout != 0).float().reshape(-1)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(T).to(dev)
    opt = None if adam_lr is None else torch.optim.Adam(modules.parameters(), lr=adam_lr)

    def step():
        modules.zero_grad(set_to_none=True)
        x = Fn.dropout(embed(cin) + pe, P, training=True)
        memory = proj(feats).unsqueeze(1)
        for layer in layers:
            x = layer(x, memory, tgt_mask=causal)
        scores = out(x)
        ce = Fn.cross_entropy(scores.reshape(-1, V), cout.reshape(-1), reduction="none")
        loss = (ce * mask).sum() / features.shape[0]
        loss.backward()
        if opt is not None:
            opt.step()
            return loss  # no read-back: the GPU timing synchronizes by itself
        return float(loss.detach())

    return step


def breakdown(rng, repeats, clock="wall", K=N * T):
    """Seconds per step spent in each layer function (forward + backward, timed alone) at the step's shapes
    (the last layer's feed-forward and the output layer at the K counted positions, as the model does)."""
    from cs231n.workspace import Workspace

    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x, mem = f32(N, T, W), f32(N, 1, W)
    attn_w = [f32(W, W) * 0.05, f32(W), f32(W, W) * 0.05, f32(W), f32(W, W) * 0.05, f32(W), f32(W, W) * 0.05,
              f32(W)]
    causal = np.tril(np.ones((T, T), dtype=bool))
    gen = np.random.default_rng(0)
    dx = f32(N, T, W)
    rows = np.sort(rng.choice(N * T, size=K, replace=False))
    xk = x.reshape(N * T, W)[rows]                                  # (K, W)
    ffn_w = [f32(W, F) * 0.05, f32(F), f32(F, W) * 0.05, f32(W)]   # made once: only the layers are timed
    gamma, beta = f32(W), f32(W)
    ws = Workspace()  # buffers reused from call to call, as the model's loss does

    def fb(name, fwd, bwd):
        scope = ws.scope(name)
        out, cache = fwd(scope)
        bwd(dx if out.shape == dx.shape else np.ones_like(out), cache, scope)

    parts = {
        "self-attention": (LAYERS, lambda: fb("self", lambda s: tl.multihead_attention_forward(
            x, x, x, *attn_w, HEADS, mask=causal, dropout_p=P, rng=gen, workspace=s),
            tl.multihead_attention_backward)),
        "cross-attention": (LAYERS, lambda: fb("cross", lambda s: tl.multihead_attention_forward(
            x, mem, mem, *attn_w, HEADS, dropout_p=P, rng=gen, workspace=s), tl.multihead_attention_backward)),
        "feed-forward": (LAYERS - 1, lambda: fb("ffn", lambda s: tl.feedforward_forward(
            x, *ffn_w, "relu", P, gen, workspace=s), tl.feedforward_backward)),
        "feed-forward (last layer, K rows)": (1, lambda: fb("ffn_rows", lambda s: tl.feedforward_forward(
            xk, *ffn_w, "relu", P, gen, workspace=s, rows_of=(rows, N * T)), tl.feedforward_backward)),
        "layer norm": (3 * LAYERS, lambda: fb("ln", lambda s: tl.layernorm_forward(x, gamma, beta, workspace=s),
                                              tl.layernorm_backward)),
        "dropout (residual)": (3 * LAYERS + 1, lambda: fb("drop", lambda s: tl.dropout_forward(
            x, P, True, gen, workspace=s), tl.dropout_backward)),
    }
    Wv, bv = f32(W, V) * 0.05, f32(V)
    y = rng.integers(0, V, size=K)

    def vocab():  # at the K counted rows, as the model's loss
        s, c = temporal_affine_forward(xk[None], Wv, bv, ws)
        _, ds = softmax_loss_rows(s[0], y, N, workspace=ws)
        temporal_affine_backward(ds[None], c, ws)
    parts["output layer + softmax loss"] = (1, vocab)
    times = {name: uses * median_time(fn, repeats=repeats, clock=clock) for name, (uses, fn) in parts.items()}
    times["feed-forward"] += times.pop("feed-forward (last layer, K rows)")
    return times


def main():
    p = argparse.ArgumentParser(description="CaptioningTransformer vs PyTorch CPU throughput")
    p.add_argument("--quick", action="store_true", help="3 repetitions and 200 sampled captions")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--step-only", action="store_true", help="only the step against PyTorch (no breakdown "
                   "or sampling)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time steps by elapsed time, or by this process's CPU time (steadier on a shared "
                        "machine; use with OPENBLAS_NUM_THREADS=1)")
    p.add_argument("--full-captions", action="store_true",
                   help="captions of T words with no <NULL> padding (the default batch has 8-15 words + "
                        "<END>, about 80%% of the positions counted): the numpy step then skips nothing")
    p.add_argument("--faults-only", action="store_true", help=argparse.SUPPRESS)  # see faults_in_fresh_process
    a = p.parse_args()
    repeats = 3 if a.quick else a.repeats
    num_sample = 200 if a.quick else 1000
    rng = np.random.default_rng(0)
    features, captions = make_batch(rng, N, T, V, D)
    if a.full_captions:  # every caption T words long: no <NULL> target, nothing for numpy to skip
        captions[:, 1:] = rng.integers(4, V, size=(N, T))
    K = int(np.count_nonzero(captions[:, 1:]))  # targets that are not <NULL> (index 0)
    if a.faults_only:
        model = CaptioningTransformer(make_vocab(V), D, W, num_heads=HEADS, num_layers=LAYERS,
                                      dim_feedforward=F, dropout=P)
        print(minor_faults_per_call(lambda: model.loss(features, captions)))
        return
    have_torch = machine_header(unset)
    print(f"shapes: N={N} T={T} V={V} W={W} layers={LAYERS} heads={HEADS} feed-forward={F} input={D}, "
          f"dropout {P}, float32; medians of {repeats} after warm-up, {a.clock} clock")
    print(f"targets that are not <NULL>: {K} of {N * T} positions "
          f"({'--full-captions' if a.full_captions else 'captions of 8-15 words'})")
    gflops = matmul_gflops(rng, [(2048, 2048, 2048), (N * T, W, F), (N * T, F, W), (N * T, W, V)], repeats,
                           clock=a.clock)
    print(f"\nmatmul limit (best float32 GEMM): {gflops:.1f} GFLOP/s\n")

    np.random.seed(0)
    model = CaptioningTransformer(make_vocab(V), D, W, num_heads=HEADS, num_layers=LAYERS,
                                  dim_feedforward=F, dropout=P)
    contenders = [("numpy", lambda: model.loss(features, captions), None)]
    if have_torch:
        contenders.append(("torch", torch_step_fn(features, captions), None))
    medians = interleaved_medians(contenders, repeats, clock=a.clock)
    mo = medians["numpy"]
    mt = medians.get("torch", float("nan"))
    achieved = step_flops(K) / mo / 1e9
    header = f"{'':12} {'step ms':>8} {'cap/s':>8} {'GFLOP/s':>8} {'% of GEMM':>9}"
    print(header)
    print("-" * len(header))
    print(f"{'numpy':12} {1e3 * mo:8.1f} {N / mo:8.0f} {achieved:8.1f} {100 * achieved / gflops:8.0f}%")
    print(f"{'torch':12} {1e3 * mt:8.1f} {N / mt:8.0f} {step_flops() / mt / 1e9:8.1f} "
          f"{100 * step_flops() / mt / 1e9 / gflops:8.0f}%   (computes all {N * T} positions)")
    print(f"numpy / torch throughput: {mt / mo:.2f}x")
    floor = gemm_floor(rng, step_products(K), repeats, clock=a.clock)
    print(f"GEMM floor (the step's {len(step_products(K))} product shapes at their own measured rates): "
          f"{1e3 * floor:.1f} ms; numpy step {1e3 * mo:.1f} ms = {mo / floor:.2f}x the floor "
          f"({1e3 * (mo - floor):.1f} ms of other work)")
    faults = faults_in_fresh_process(__file__, ["--full-captions"] if a.full_captions else [])
    print(f"minor page faults per numpy step (after the first, in a fresh process): {faults:.0f}")

    if a.step_only:
        return
    parts = breakdown(rng, repeats, a.clock, K)
    total = sum(parts.values())
    print(f"\nwhere the numpy step's time goes (each part's forward + backward timed alone, x its uses; "
          f"sum {1e3 * total:.0f} ms of the {1e3 * mo:.0f} ms step):")
    for name, sec in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28} {1e3 * sec:7.1f} ms  {100 * sec / mo:5.1f}%")

    model.training = False
    feats = rng.standard_normal((num_sample, D)).astype(np.float32)
    t_greedy = median_time(lambda: model.sample(feats, max_length=30), repeats=max(1, repeats // 2), clock=a.clock)
    print(f"\ngreedy sampling of {num_sample} captions of length 30 (untrained: no early <END>), "
          f"scaled to 1,000: {t_greedy * 1000 / num_sample:.2f} s")


if __name__ == "__main__":
    main()
