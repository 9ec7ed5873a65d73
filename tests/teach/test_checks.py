"""Notebook 05's exercise checks: the library's own steps pass, and each usual mistake is named
precisely (which rows, tiles or gradients differ, by how much), never a bare "wrong"."""

import math

import torch
from vanilla_flash.teach import checks
from vanilla_flash.teach import from_scratch as fs


def test_the_librarys_steps_are_correct():
    for step, fn in (("naive_attention", fs.naive_attention), ("online_softmax", fs.online_softmax),
                     ("tiled_forward", fs.tiled_forward), ("tiled_backward", fs.tiled_backward)):  # fmt: skip
        assert checks.check(step, fn) == checks.CORRECT, step


def test_a_step_not_yet_written_says_so():
    def todo(*args, **kwargs):
        raise NotImplementedError

    for step in checks.STEPS:
        assert checks.check(step, todo) == checks.NOT_WRITTEN


def test_a_forgotten_causal_mask_names_the_rows():
    def no_mask(q, k, v, causal=False):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v

    said = checks.naive_attention(no_mask)
    assert said.startswith("✗ the output (causal=True): 36 of 37 rows differ")  # the last row sees every key
    assert "the largest difference is" in said and "got" in said and "expected" in said


def test_a_forgotten_rescale_in_the_online_softmax_is_caught_at_the_first_block_size():
    def no_rescale(x, block):
        m = torch.full(x.shape[:-1], float("-inf"), dtype=x.dtype)
        total = torch.zeros(x.shape[:-1], dtype=x.dtype)
        for start in range(0, x.shape[-1], block):
            chunk = x[..., start : start + block]
            m_new = torch.maximum(m, chunk.max(-1).values)
            total, m = total + torch.exp(chunk - m_new[..., None]).sum(-1), m_new
        return torch.exp(x - m[..., None]) / total[..., None]

    assert checks.online_softmax(no_rescale).startswith("✗ softmax with block=1: 4 of 4 rows differ")


def test_a_wrong_tile_is_named_by_its_index():
    def last_tile_off(q, k, v, block_q, block_k, causal=False):
        out, lse, _ = fs.tiled_forward(q, k, v, block_q, block_k, causal=causal)
        out = out.clone()
        out[..., -3:, :] += 0.1
        return out, lse

    said = checks.tiled_forward(last_tile_off)
    assert said.startswith("✗ the output (tiles 16 x 16, causal=False): 1 of 3 query tiles differ (query tile 2)")
    assert "the largest difference is 0.1," in said


def test_shapes_types_and_exceptions_are_said_as_such():
    def half_width(q, k, v, block_q, block_k, causal=False):
        return fs.tiled_forward(q, k, v, block_q, block_k, causal=causal)[0][..., :8], None

    assert "has shape (2, 3, 45, 8), expected (2, 3, 45, 16)" in checks.tiled_forward(half_width)
    assert "returned a Tensor; expected (output, log-sum-exp)" in checks.tiled_forward(
        lambda q, k, v, bq, bk, causal=False: q
    )

    def swapped(q, k, v, out, lse, grad_out, block_q, block_k, causal=False):
        return fs.tiled_backward(q, k, v, out, lse, grad_out, block_q, block_k, causal=causal)[::-1]

    assert checks.tiled_backward(swapped).startswith("✗ dq (causal=False): 3 of 3 tiles differ")
    said = checks.naive_attention(lambda q, k, v, causal=False: q @ k)
    assert said.startswith("✗ raised RuntimeError:")
