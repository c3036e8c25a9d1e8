"""Self-attention blocks: causal masking holds, padding is inert, positions count from the end."""

import torch

from recfunnel.nn.transformer import SequenceEncoder, TransformerBlock, attention_mask


def _encoder(causal=True):
    torch.manual_seed(0)
    return SequenceEncoder(8, 6, num_blocks=2, num_heads=2, dropout=0.0, causal=causal).eval()


def test_the_mask_opens_earlier_real_positions_and_the_diagonal():
    valid = torch.tensor([[False, True, True, True]])
    causal = attention_mask(valid, causal=True)[0, 0].int().tolist()
    assert causal == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]]
    both = attention_mask(valid, causal=False)[0, 0].int().tolist()
    assert both == [[1, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]]


def test_a_later_item_never_changes_an_earlier_state():
    encoder = _encoder()
    items = torch.randn(1, 6, 8)
    valid = torch.ones(1, 6, dtype=torch.bool)
    changed = items.clone()
    changed[0, 4:] = torch.randn(2, 8)
    before, after = encoder(items, valid), encoder(changed, valid)
    torch.testing.assert_close(before[0, :4], after[0, :4])
    assert not torch.allclose(before[0, 4:], after[0, 4:])


def test_bidirectional_blocks_do_see_later_items():
    encoder = _encoder(causal=False)
    items, valid = torch.randn(1, 6, 8), torch.ones(1, 6, dtype=torch.bool)
    changed = items.clone()
    changed[0, 5] = torch.randn(8)
    assert not torch.allclose(encoder(items, valid)[0, 0], encoder(changed, valid)[0, 0])


def test_padding_is_inert_and_positions_count_from_the_end():
    encoder = _encoder()
    items = torch.randn(1, 3, 8)
    short = encoder(items, torch.ones(1, 3, dtype=torch.bool))
    # the same three items left-padded to 6: the pads hold any values, the real states are the same
    padded = torch.cat([torch.randn(1, 3, 8), items], 1)
    valid = torch.tensor([[False, False, False, True, True, True]])
    torch.testing.assert_close(encoder(padded, valid)[0, 3:], short[0])


def test_attention_weights_of_the_last_position_sum_to_one_over_real_items():
    encoder = _encoder()
    valid = torch.tensor([[False, False, True, True, True, True]])
    with torch.no_grad():
        weights = encoder.last_attention(torch.randn(1, 6, 8), valid)
    assert weights.shape == (1, 6) and float(weights[0, :2].sum()) == 0.0
    torch.testing.assert_close(weights.sum(1), torch.ones(1))


def test_dropout_applies_only_in_training():
    block = TransformerBlock(8, 2, dropout=0.5)
    x, mask = torch.randn(2, 4, 8), attention_mask(torch.ones(2, 4, dtype=torch.bool), causal=True)
    torch.manual_seed(0)
    first = block.train()(x, mask)
    assert not torch.allclose(first, block(x, mask))
    torch.testing.assert_close(block.eval()(x, mask), block(x, mask))
