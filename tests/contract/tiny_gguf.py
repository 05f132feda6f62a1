"""A tiny llama-architecture GGUF model, written by the test itself with the `gguf` package.

Two layers, F32, random weights (seeded), a SentencePiece vocabulary with the 256 `<0xNN>`
byte tokens so any text tokenizes. About 160 KB; it loads in milliseconds and produces noise,
which is all a protocol test needs. numpy shapes are (out, in): GGUF stores dimensions
reversed, so llama.cpp sees each matrix as ne = [in, out].
"""

from __future__ import annotations

from pathlib import Path

EOS_TOKEN = 2
N_EMBD, N_FF, N_HEAD, N_LAYER, N_CTX = 32, 64, 2, 2, 512
WORDS = [f"▁{w}" for w in ("the", "a", "sky", "is", "blue", "hello", "world", "tok", "and", "of")]


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *WORDS]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL,
             *([gguf.TokenType.BYTE] * 256), *([gguf.TokenType.NORMAL] * len(WORDS))]
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(WORDS))]
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("aiub-tiny-llama")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    # Without a pooling type a llama model embeds per token; mean pooling gives one vector per
    # input, as an embedding model's GGUF declares.
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(EOS_TOKEN)
    writer.add_unk_token_id(0)

    def tensor(name: str, *shape: int) -> None:
        data = np.ones(shape, np.float32) if len(shape) == 1 else rng.normal(0, 0.2, shape).astype(np.float32)
        writer.add_tensor(name, data)

    tensor("token_embd.weight", n_vocab, N_EMBD)
    for i in range(N_LAYER):
        tensor(f"blk.{i}.attn_norm.weight", N_EMBD)
        for part in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{part}.weight", N_EMBD, N_EMBD)
        tensor(f"blk.{i}.ffn_norm.weight", N_EMBD)
        tensor(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        tensor(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        tensor(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
    tensor("output_norm.weight", N_EMBD)
    tensor("output.weight", n_vocab, N_EMBD)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
