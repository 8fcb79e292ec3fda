"""Training-step and sampling throughput of CaptioningRNN at COCO scale, against PyTorch on the CPU.

    python benchmarks/bench_captioning.py            # full table (about 2-3 minutes on 2 cores)
    python benchmarks/bench_captioning.py --quick    # fewer repetitions, a smoke run

Measures, in one process on one machine:
  a/b. a CaptioningRNN training step (loss and every gradient, float32) for lstm, rnn and gru at
       N=128, T=16 (captions of 17 tokens: <START>, 8-15 words, <END>, <NULL> padding), V=1004,
       wordvec 256, hidden 512, input 512: captions/s. Its loss runs the output layer only at the
       positions whose target is not <NULL> (about 80% here); ``--full-captions`` gives every caption
       16 words, so that nothing is skipped;
  c.   greedy and beam-5 sampling of 1,000 captions of length 30;
  d.   the equivalent PyTorch CPU model (nn.Embedding, nn.Linear projection, nn.LSTM/RNN/GRU, nn.Linear
       vocabulary layer, cross-entropy summed over unmasked tokens and divided by N, backward),
       interleaved repetition by repetition with (a)/(b) so both see the same machine state. It is the
       plain PyTorch model: its LSTM projects the input of every position and its output layer scores
       every position, where the numpy step projects each distinct word of the minibatch once and
       scores only the counted positions (the same loss and gradients, fewer multiply-adds);
  e.   float32 matmul throughput of this machine and the fraction of it the numpy step reaches,
       counting the FLOPs of every matrix product the step performs;
  f.   the GEMM floor: the time all the step's matrix products take at their own measured rates
       (each shape timed alone), beside the step, so the time that is not products is visible;
  g.   minor page faults per numpy step after the first (the model reuses its work buffers), measured
       in a fresh process where nothing else has run;
  h.   peak memory allocated during one numpy training step (tracemalloc; numpy reports to it).
PyTorch runs with as many threads as numpy's BLAS (set OPENBLAS_NUM_THREADS=1 on a shared machine).
Figures are medians after a warm-up. OpenBLAS's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides are
unset in this process (see _common.py), as on users' machines.
"""
import argparse
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._common import (blas_threads, gemm_floor, interleaved_medians, machine_header,  # noqa: E402
                               faults_in_fresh_process, make_batch, make_vocab, matmul_gflops, median_time,
                               minor_faults_per_call,
                               products_flops, reexec_without_openblas_overrides, with_gradient_products)

unset = reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

from cs231n.classifiers.rnn import CaptioningRNN  # noqa: E402

N, T, V, W, H, D = 128, 16, 1004, 256, 512, 512
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def step_products(cell, distinct, K=N * T):
    """Every matrix product of one numpy training step, as (batch, m, k, n, calls).

    ``distinct``: the number of distinct input words in the minibatch; the numpy step projects each of
    them once through Wx (the vocabulary's rows, not every position; see rnn_layers.word_projection_forward).
    ``K``: the positions whose target is not <NULL>, the rows of the output layer (CaptioningRNN.loss).
    """
    gH = GATES[cell] * H
    NT = N * T
    fwd = [(1, N, D, H, 1),            # features W_proj
           (1, distinct, W, gH, 1),    # W_embed[words] Wx, each distinct word once
           (1, K, H, V, 1)]            # h W_vocab, at the counted positions
    # Backward: every product has two gradient products (data and weights), each as large as the forward;
    # the recurrent one runs per step forward and backward, its weight gradient once over all steps.
    return with_gradient_products(fwd) + [(1, N, H, gH, T), (1, N, gH, H, T), (1, H, NT, gH, 1)]


def step_flops(cell, distinct, K=N * T):
    """FLOPs (2 per multiply-add) of every matrix product in one numpy training step."""
    return products_flops(step_products(cell, distinct, K))


def torch_step_fn(cell, features, captions, seed=0):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(blas_threads())
    rnn_cls = {"lstm": torch.nn.LSTM, "rnn": torch.nn.RNN, "gru": torch.nn.GRU}[cell]
    embed = torch.nn.Embedding(V, W)
    proj = torch.nn.Linear(D, H)
    rnn = rnn_cls(W, H, batch_first=True)
    vocab = torch.nn.Linear(H, V)
    params = list(embed.parameters()) + list(proj.parameters()) + list(rnn.parameters()) + \
        list(vocab.parameters())
    feats = torch.from_numpy(features)
    cap = torch.from_numpy(captions.astype(np.int64))
    cin, cout = cap[:, :-1], cap[:, 1:]
    mask = (cout != 0).float()

    def step():
        for p in params:
            p.grad = None
        h0 = proj(feats).unsqueeze(0)                          # (1, N, H)
        state = (h0, torch.zeros_like(h0)) if cell == "lstm" else h0
        out, _ = rnn(embed(cin), state)                        # (N, T, H)
        scores = vocab(out)                                    # (N, T, V)
        ce = F.cross_entropy(scores.reshape(-1, V), cout.reshape(-1), reduction="none")
        loss = (ce * mask.reshape(-1)).sum() / N
        loss.backward()
        return float(loss.detach())

    return step


def peak_step_memory(model, features, captions):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    model.loss(features, captions)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base) / 2 ** 20


def main():
    p = argparse.ArgumentParser(description="CaptioningRNN vs PyTorch CPU throughput")
    p.add_argument("--quick", action="store_true", help="3 repetitions and 200 sampled captions")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--cells", default="lstm,rnn,gru")
    p.add_argument("--step-only", action="store_true", help="only the training steps (no sampling)")
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
        model = CaptioningRNN(make_vocab(V), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=a.cells,
                              dtype=np.float32)
        print(minor_faults_per_call(lambda: model.loss(features, captions)))
        return
    have_torch = machine_header(unset)
    distinct = len(np.unique(captions[:, :-1]))
    print(f"shapes: N={N} T={T} V={V} wordvec={W} hidden={H} input={D}, float32; medians of {repeats} after warm-up, "
          f"{a.clock} clock")
    print(f"targets that are not <NULL>: {K} of {N * T} positions "
          f"({'--full-captions' if a.full_captions else 'captions of 8-15 words'}); {distinct} distinct input words")
    gflops = matmul_gflops(rng, [(2048, 2048, 2048), (N * T, H, V), (N * T, W, 4 * H), (N, H, 4 * H)], repeats,
                           clock=a.clock)
    print(f"\nmatmul limit (best float32 GEMM): {gflops:.1f} GFLOP/s\n")

    header = (f"{'cell':5} {'numpy cap/s':>12} {'torch cap/s':>12} {'ratio':>7} {'GFLOP/s':>8} {'% of GEMM':>9} "
              f"{'step ms':>8} {'floor ms':>8} {'step/floor':>10} {'faults':>7} {'peak MB':>8}")
    print(header)
    print("-" * len(header))
    for cell in a.cells.split(","):
        np.random.seed(0)
        model = CaptioningRNN(make_vocab(V), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell,
                              dtype=np.float32)
        contenders = [("numpy", lambda: model.loss(features, captions), None)]
        if have_torch:
            contenders.append(("torch", torch_step_fn(cell, features, captions), None))
        medians = interleaved_medians(contenders, repeats, clock=a.clock)
        mo = medians["numpy"]
        rate = N / mo
        trate = N / medians["torch"] if have_torch else float("nan")
        achieved = step_flops(cell, distinct, K) / mo / 1e9
        floor = gemm_floor(rng, step_products(cell, distinct, K), repeats, clock=a.clock)
        faults = faults_in_fresh_process(__file__, ["--cells", cell] + (["--full-captions"] if a.full_captions else []))
        mem = peak_step_memory(model, features, captions)
        print(f"{cell:5} {rate:12.0f} {trate:12.0f} {rate / trate:7.2f} {achieved:8.1f} "
              f"{100 * achieved / gflops:8.0f}% {1e3 * mo:8.1f} {1e3 * floor:8.1f} {mo / floor:10.2f} "
              f"{faults:7.0f} {mem:8.0f}")
    if a.step_only:
        return

    np.random.seed(0)
    model = CaptioningRNN(make_vocab(V), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="lstm",
                          dtype=np.float32)
    feats = rng.standard_normal((num_sample, D)).astype(np.float32)
    t_greedy = median_time(lambda: model.sample(feats, max_length=30), repeats=repeats, clock=a.clock)
    t_beam = median_time(lambda: model.sample(feats, max_length=30, beam_size=5), repeats=max(1, repeats // 2),
                         clock=a.clock)
    scale = 1000 / num_sample
    print(f"\nsampling {num_sample} captions of length 30 (lstm), scaled to 1,000:")
    print(f"  greedy  {t_greedy * scale:7.2f} s")
    print(f"  beam-5  {t_beam * scale:7.2f} s")


if __name__ == "__main__":
    main()
