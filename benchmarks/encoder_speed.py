"""Featurization speed of the package's Hugging Face encoder path on a device: utterances per
second of :class:`~l2l_taskmix.features.encoders.HFEncoder` (``from_pretrained``, tokenize,
sort by length, pad, forward, mean-pool) over the bundled sample's utterances.

No machine here reaches the hub, so the model is XLM-R-base's architecture (12 layers, 768
wide: the paper's encoder's work per token) with random weights, and its tokenizer a Unigram
model trained on the sample itself (a smaller vocabulary than XLM-R's; the token counts are
of the same order). Both are saved with ``save_pretrained`` into a temporary folder and loaded
through the same ``from_pretrained`` code as a real checkpoint. The first batch is a warm-up
(not timed); on CUDA the clock stops after a synchronize.

Usage::

    python benchmarks/encoder_speed.py --device cuda      # writes benchmarks/results/encoder_speed.json
    python benchmarks/encoder_speed.py --texts 40 --hidden-size 32 --layers 2   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def build_model(folder: Path, texts: list[str], hidden_size: int, layers: int, vocab_size: int) -> Path:
    """An XLM-R-shaped model (random weights) and a tokenizer trained on ``texts``, saved in ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    fast.save_pretrained(folder)
    config = XLMRobertaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden_size // 64),
        intermediate_size=4 * hidden_size,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def main(argv=None) -> int:
    from l2l_taskmix.benchmark.datasets import load_split
    from l2l_taskmix.features.encoders import HFEncoder
    from l2l_taskmix.validation import check_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto [default: auto]")
    p.add_argument("--texts", type=int, default=None, help="utterances to encode [default: all distinct ones of the sample]")
    p.add_argument("--hidden-size", type=int, default=768, help="[default: 768, XLM-R-base's]")
    p.add_argument("--layers", type=int, default=12, help="[default: 12, XLM-R-base's]")
    p.add_argument("--vocab-size", type=int, default=8000, help="the trained tokenizer's vocabulary [default: 8000]")
    p.add_argument("--batch-size", type=int, default=32, help="[default: 32, HFEncoder's]")
    p.add_argument("--out", default="benchmarks/results/encoder_speed.json", help="JSON output path")
    args = p.parse_args(argv)
    device = check_device(args.device, "--device")

    texts = list(dict.fromkeys(t for task in load_split("mtop-long").tasks for t in task.texts))
    if args.texts is not None:
        texts = texts[: args.texts]
    with tempfile.TemporaryDirectory() as folder:
        build_model(Path(folder), texts, args.hidden_size, args.layers, args.vocab_size)
        enc = HFEncoder(folder, device=str(device), batch_size=args.batch_size, progress=False)
        enc.encode(texts[: args.batch_size])  # warm-up: loading, kernels
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        x = enc.encode(texts)
        sync()
        seconds = time.perf_counter() - start
        tokens = sum(len(ids) for ids in enc.tokenizer(texts, truncation=True, max_length=enc.max_length)["input_ids"])
    result = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "model": f"XLM-R architecture, {args.layers} layers x {args.hidden_size}, random weights; tokenizer trained on the sample",
        "texts": len(texts),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "seconds": round(seconds, 3),
        "utterances_per_second": round(len(texts) / seconds, 1),
        "dim": int(x.shape[1]),
    }
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(texts)} utterances ({tokens} tokens) in {seconds:.1f} s on {device}: {result['utterances_per_second']} utterances/s; "
        f"wrote {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
