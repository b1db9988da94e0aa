"""Forward+backward speed and peak memory of the Trellis op forms vs softmax attention (CPU time).

Each (form, T) runs in a fresh subprocess so its peak resident memory is its own:
    python benchmarks/op_speed.py                      # B·H = 64, d = m = 32, T in 64..4096
    python benchmarks/op_speed.py --lengths 64 256 --forms chunk sdpa --out results.md
Peak memory is the process's peak RSS minus its RSS just before the timed calls.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import peak_rss_mb, rss_mb


def measure(form: str, length: int, batch: int, heads: int, dim: int, slots: int, repeats: int):
    import torch
    import torch.nn.functional as F

    from trellis_ts.ops.trellis import chunk_trellis, naive_trellis

    torch.set_num_threads(1)  # CPU time of one thread is the work itself, on a busy machine too
    torch.manual_seed(0)
    shape = (batch, length, heads, dim)
    q, k, v = (F.normalize(torch.randn(shape), dim=-1).requires_grad_() for _ in range(3))
    alpha = torch.randn(batch, length, heads, slots, requires_grad=True)
    log_beta = F.logsigmoid(torch.randn(batch, length, heads) + 3).requires_grad_()
    gamma = (torch.sigmoid(torch.randn(batch, length, heads)) / 16).requires_grad_()

    def step():
        if form == "sdpa":  # softmax attention in the same [B, H, T, d] layout, causal
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
            )
        else:  # exact: phi=identity at chunk 64; stale: silu at chunk 16; naive: silu, C=16
            op = naive_trellis if form == "naive" else chunk_trellis
            phi, chunk = ("identity", 64) if form == "exact" else ("silu", 16)
            y, _ = op(q, k, v, alpha, log_beta, gamma, chunk_size=chunk, phi=phi)
        y.square().mean().backward()

    step()  # warm-up
    base = rss_mb()
    start = time.process_time()
    for _ in range(repeats):
        step()
    seconds = (time.process_time() - start) / repeats
    peak = peak_rss_mb()
    return {
        "form": form,
        "T": length,
        "seconds": seconds,
        "tokens_per_s": batch * length / seconds,
        "peak_extra_mb": max(peak - base, 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--forms", nargs="+", default=["naive", "stale", "exact", "sdpa"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--naive-max-length",
        type=int,
        default=1024,
        help="skip the naive loop above this T (it keeps every token's state for backward: "
        "at T=4096 it ran for over 10 minutes and 7 GB here)",
    )
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one measurement
    args = parser.parse_args()
    if args.one:
        form, length = args.one.split(":")
        row = measure(form, int(length), args.batch, args.heads, args.dim, args.slots, args.repeats)
        print(json.dumps(row))
        return
    rows = []
    for length in args.lengths:
        for form in args.forms:
            if form == "naive" and length > args.naive_max_length:
                continue
            cmd = [sys.executable, __file__, "--one", f"{form}:{length}"]
            cmd += ["--batch", str(args.batch), "--heads", str(args.heads), "--dim", str(args.dim)]
            cmd += ["--slots", str(args.slots), "--repeats", str(args.repeats)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    table = [
        f"B·H={args.batch * args.heads}, d=m={args.dim}, forward+backward, fp32, one thread, "
        f"CPU seconds, {args.repeats} repeats; exact = phi identity (chunk 64), stale = silu "
        "(chunk 16), naive = the token loop (silu, chunk 16)",
        "",
        "| T | form | s / iter | tokens/s | peak extra MB |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['T']} | {r['form']} | {r['seconds']:.4f} | {r['tokens_per_s']:,.0f} "
            f"| {r['peak_extra_mb']:.0f} |"
        )
    text = "\n".join(table)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
