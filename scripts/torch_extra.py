"""PyTorch peers that ../shared/bench/torch_peers.py does not time, at the shapes our bench CLI
uses with --size full: torch.topk on issue 4's long-row shapes, SDPA decode with grouped kv
heads, the SDPA backward, and autograd through chunked top-k attention (issue 7's peers).

Same method as torch_peers.py (CUDA events around each call, median of reps), run in the same
device call as our bench (scripts/on_gpu.sh). One JSON line per measurement, all written to
$OUT/anchors_extra.jsonl; a failing measurement records its error and the rest still run.
"""
import json, math, os
import torch
import torch.nn.functional as F

dev = "cuda"
rows = []


def timeit(fn, reps=10, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        ts.append(start.elapsed_time(end))
    ts.sort()
    return ts[len(ts) // 2]


def emit(**kw):
    print(json.dumps(kw), flush=True)
    rows.append(kw)


def attempt(what, measure, **shape):
    """Runs measure() -> dict of results and records it with the shape, or the error."""
    try:
        emit(what=what, **shape, **measure())
    except Exception as e:  # keep going: one bad shape must not cost the rest of the run
        emit(what=what, **shape, error=f"{type(e).__name__}: {str(e)[:200]}")
    torch.cuda.empty_cache()


emit(what="device", name=torch.cuda.get_device_name(), torch=torch.__version__)

# torch.topk at issue 4's shapes that torch_peers.py lacks (f32 scores, standard normal).
for r, n, k in [(1, 131072, 2048), (64, 131072, 2048)]:
    def topk():
        s = torch.randn(r, n, device=dev)
        ms = timeit(lambda: torch.topk(s, k, dim=-1))
        return dict(ms=ms, gbps_read=r * n * 4 / ms / 1e6)
    attempt("topk", topk, rows=r, n=n, k=k)


# Decode: one query per sequence against a long f32 cache, grouped kv heads (our bench's
# `dense_attention decode B4 H32/8 N65536 d128`: K and V of 1 GiB, one binding each).
def decode():
    B, Hq, Hkv, N, d = 4, 32, 8, 65536, 128
    q = torch.randn(B, Hq, 1, d, device=dev)
    k = torch.randn(B, Hkv, N, d, device=dev)
    v = torch.randn_like(k)
    try:
        ms = timeit(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
        gqa = "enable_gqa"
    except TypeError:  # torch < 2.5: expand the kv heads first (not timed)
        k, v = (t.repeat_interleave(Hq // Hkv, dim=1) for t in (k, v))
        ms = timeit(lambda: F.scaled_dot_product_attention(q, k, v))
        gqa = "expanded"
    return dict(B=B, Hq=Hq, Hkv=Hkv, N=N, d=d, gqa=gqa, ms=ms,
                gbps=2 * B * Hkv * N * d * 4 / ms / 1e6)


attempt("sdpa_decode", decode, dtype="torch.float32")


# Dense backward: SDPA forward once, then time the backward alone (our bench's
# `dense_attention_backward h8 n{16384,65536} d64 causal`, f32; f16 for reference).
def sdpa_backward(n, dtype):
    def measure():
        H, d = 8, 64
        q, k, v = (torch.randn(1, H, n, d, device=dev, dtype=dtype, requires_grad=True)
                   for _ in range(3))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        do = torch.randn_like(o)
        reps, warm = (3, 1) if n > 16384 else (5, 2)
        ms = timeit(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), reps, warm)
        return dict(H=H, d=d, causal=True, ms=ms, tflops=5 * 0.5 * H * n * n * d * 2 / ms / 1e9)
    return measure


for n in [16384, 65536]:
    for dtype in [torch.float32, torch.float16]:
        attempt("sdpa_backward", sdpa_backward(n, dtype), n=n, dtype=str(dtype))


# Top-k attention as a researcher writes it: per query chunk, causal scores for all heads,
# torch.topk, softmax over the kept scores, gather V. Forward alone, and forward + backward
# through autograd (our bench's `topk_attention` / `sparse_attention_backward`, h8 d64 k32
# causal, f32).
def knn_attention(q, k, v, kk):
    H, n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    chunk = max(1, min(n, (1 << 28) // (n * H)))
    v_flat = v.reshape(H * n, d)
    head_base = (torch.arange(H, device=q.device) * n)[:, None, None]
    cols = torch.arange(n, device=q.device)
    outs = []
    for i in range(0, n, chunk):
        s = (q[:, i:i + chunk] @ k.transpose(1, 2)) * scale
        rows_ = torch.arange(i, min(i + chunk, n), device=q.device)
        s = s.masked_fill(cols[None, None, :] > rows_[None, :, None], float("-inf"))
        val, idx = torch.topk(s, kk, dim=-1)
        p = torch.softmax(val, dim=-1)
        outs.append(torch.einsum("hqk,hqkd->hqd", p, v_flat[idx + head_base]))
    return torch.cat(outs, dim=1)


def knn(n, kk):
    def measure():
        H, d = 8, 64
        q, k, v = (torch.randn(H, n, d, device=dev, requires_grad=True) for _ in range(3))
        reps, warm = (3, 1) if n > 16384 else (5, 2)
        with torch.no_grad():
            fwd = timeit(lambda: knn_attention(q, k, v, kk), reps, warm)
        do = torch.randn(H, n, d, device=dev)

        def step():
            o = knn_attention(q, k, v, kk)
            torch.autograd.grad(o, (q, k, v), do)
        both = timeit(step, reps, warm)
        return dict(H=H, d=d, causal=True, fwd_ms=fwd, fwd_bwd_ms=both, bwd_ms_est=both - fwd)
    return measure


for n in [16384, 65536]:
    attempt("knn_attention_torch", knn(n, 32), n=n, k=32)

with open(os.path.join(os.environ.get("OUT", "/tmp"), "anchors_extra.jsonl"), "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
