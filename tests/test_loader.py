import itertools
import json

from etils import epath
import grain
import numpy as np
import pytest

from input_pipeline import loader
from input_pipeline import packing
from input_pipeline import sources

FIELDS = {"inputs": np.int32, "targets": np.int32, "segment_ids": np.int32,
          "positions": np.int32, "loss_weights": np.float32}


def take(iterator, n):
  return list(itertools.islice(iterator, n))


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def rows_of(batches):
  """Batches -> [rows, seq_len + 1] packed tokens (inputs plus the last target)."""
  return np.concatenate([np.concatenate([b["inputs"], b["targets"][:, -1:]], 1) for b in batches])


def tokenized_chunk_lengths(config, tokenizer, documents):
  return [len(tokenizer.encode(text)) + is_last
          for text, is_last in loader.document_chunks(documents, config.data.chunk_chars)]


def test_packing_rows_segments_positions_and_loss_weights():
  chunks = [np.arange(1, 6), np.arange(6, 21), np.zeros(0, np.int32), np.arange(21, 24)]
  ds = packing.PackIterDataset(grain.MapDataset.source(chunks).to_iter_dataset(), row_len=8)
  rows = list(ds)
  np.testing.assert_array_equal([r["tokens"] for r in rows], [
      [1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16], [17, 18, 19, 20, 21, 22, 23, 0]])
  np.testing.assert_array_equal([r["segment_ids"] for r in rows], [
      [1, 1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 2, 2, 2, 0]])
  np.testing.assert_array_equal([r["positions"] for r in rows], [
      [0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 0, 1, 2, 0]])
  batch = packing.rows_to_batch(rows, num_rows=4)
  np.testing.assert_array_equal(batch["targets"][0], [2, 3, 4, 5, 6, 7, 8])
  np.testing.assert_array_equal(batch["loss_weights"], [
      [1, 1, 1, 1, 0, 1, 1],  # 5 -> 6 crosses into the next chunk
      [1, 1, 1, 1, 1, 1, 1],
      [1, 1, 1, 0, 1, 1, 0],  # 23 -> padding
      [0, 0, 0, 0, 0, 0, 0]])  # a padding row
  assert not batch["inputs"][3].any() and not batch["segment_ids"][3].any()


def test_batch_fields_shapes_and_dtypes(tiny_config, tiny_tokenizer):
  batch = next(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1))
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      k: ((4, 32), np.dtype(t)) for k, t in FIELDS.items()}


def test_training_batches_keep_segments_apart(tiny_config, tiny_tokenizer):
  batches = take(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1), 40)
  eos = tiny_tokenizer.eos_id
  for b in batches:
    seg, pos, w = b["segment_ids"], b["positions"], b["loss_weights"]
    np.testing.assert_array_equal(b["targets"][:, :-1], b["inputs"][:, 1:])
    assert (seg[:, 0] == 1).all() and (np.diff(seg) >= 0).all()  # training rows are never padded
    starts = np.concatenate([np.ones_like(seg[:, :1], bool), np.diff(seg) > 0], 1)
    np.testing.assert_array_equal(pos == 0, starts)  # positions restart at each segment
    np.testing.assert_array_equal(pos[:, 1:][~starts[:, 1:]], pos[:, :-1][~starts[:, 1:]] + 1)
    np.testing.assert_array_equal(w[:, :-1], ~starts[:, 1:])  # no loss across segments
    after_eos = starts[:, 1:][b["inputs"][:, :-1] == eos]
    assert after_eos.all()  # EOS ends its segment
    assert (w[b["targets"] == eos] == 1).all()  # and is predicted from its own document


def test_first_epoch_is_the_training_text_shuffled(tiny_config, tiny_tokenizer):
  train, held_out, _ = sources.load_splits(tiny_config.data)
  epoch_tokens = sum(tokenized_chunk_lengths(tiny_config, tiny_tokenizer, train))
  rows_needed = 2 * epoch_tokens // 33 + 2
  iterator = loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1)
  batches = take(iterator, rows_needed // 4 + 1)
  stream = rows_of(batches).reshape(-1)
  epochs = [stream[:epoch_tokens], stream[epoch_tokens:2 * epoch_tokens]]
  eos = tiny_tokenizer.eos_id
  texts = [tiny_tokenizer.decode(e[e != eos]) for e in epochs]
  assert [(e == eos).sum() for e in epochs] == [len(train), len(train)]  # one EOS per document
  train_lines = sorted("".join(train).splitlines())
  assert sorted(texts[0].splitlines()) == train_lines == sorted(texts[1].splitlines())
  assert texts[0] != "".join(train) and texts[1] != texts[0]  # shuffled; reshuffled each epoch
  assert not set(texts[0].splitlines()) & set("".join(held_out).splitlines())


def test_unshuffled_stream_is_the_chunks_in_order(tiny_config, tiny_tokenizer):
  tiny_config.data.shuffle = False
  train, _, _ = sources.load_splits(tiny_config.data)
  eos = [tiny_tokenizer.eos_id]
  epoch = np.concatenate([tiny_tokenizer.encode(text) + eos * is_last for text, is_last
                          in loader.document_chunks(train, tiny_config.data.chunk_chars)])
  stream = rows_of(take(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1), 60))
  stream = stream.reshape(-1)
  assert len(stream) > len(epoch)
  np.testing.assert_array_equal(stream[:len(epoch)], epoch)
  np.testing.assert_array_equal(stream[len(epoch):2 * len(epoch)][:100], epoch[:100])  # repeats


def test_deterministic_given_the_seed_and_the_thread_count(tiny_config, tiny_tokenizer):
  reference = take(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1), 6)
  tiny_config.data.num_threads = 2
  assert_batches_equal(take(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1), 6),
                       reference)
  tiny_config.seed = 1
  other = take(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1), 6)
  assert not np.array_equal(rows_of(other), rows_of(reference))


@pytest.mark.parametrize("steps_before", [1, 3, 7])
def test_restored_iterator_continues_exactly(tiny_config, tiny_tokenizer, steps_before):
  uninterrupted = loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1)
  take(uninterrupted, steps_before)
  state = json.loads(json.dumps(uninterrupted.get_state()))
  expected = take(uninterrupted, 8)
  restored = loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1)
  take(restored, 2)  # a used iterator: set_state must not depend on where it was
  restored.set_state(state)
  assert_batches_equal(take(restored, 8), expected)


def test_restore_through_grain_checkpoint_handler(tiny_config, tiny_tokenizer, tmp_path):
  tiny_config.data.num_threads = 2
  iterator = loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1)
  take(iterator, 5)
  grain.checkpoint.CheckpointHandler().save(epath.Path(tmp_path), item=iterator)
  expected = take(iterator, 5)
  restored = grain.checkpoint.CheckpointHandler().restore(
      epath.Path(tmp_path), item=loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1))
  assert_batches_equal(take(restored, 5), expected)


@pytest.mark.parametrize("process_count", [2, 4])
def test_processes_split_the_same_global_batches(tiny_config, tiny_tokenizer, process_count):
  single = take(loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1), 4)
  per_process = [take(loader.make_train_iterator(tiny_config, tiny_tokenizer, p, process_count), 4)
                 for p in range(process_count)]
  assert per_process[0][0]["inputs"].shape == (4 // process_count, 32)
  joined = [{k: np.concatenate([batches[i][k] for batches in per_process]) for k in FIELDS}
            for i in range(4)]
  assert_batches_equal(joined, single)


def test_state_is_the_same_for_any_process_count(tiny_config, tiny_tokenizer):
  one = loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 1)
  second_of_two = loader.make_train_iterator(tiny_config, tiny_tokenizer, 1, 2)
  take(one, 3)
  take(second_of_two, 3)
  assert one.get_state() == second_of_two.get_state()
  expected = take(one, 2)
  resumed = loader.make_train_iterator(tiny_config, tiny_tokenizer, 1, 2)
  resumed.set_state(second_of_two.get_state())
  assert_batches_equal(take(resumed, 2), [{k: v[2:] for k, v in b.items()} for b in expected])


def test_batch_not_divisible_by_processes_is_an_error(tiny_config, tiny_tokenizer):
  with pytest.raises(ValueError, match="batch_size=4 .* process count 3"):
    loader.make_train_iterator(tiny_config, tiny_tokenizer, 0, 3)
  with pytest.raises(ValueError, match="batch_size=4 .* process count 3"):
    loader.make_eval_batches(tiny_config, tiny_tokenizer, 0, 3)


def test_eval_batches_are_fixed_padded_and_cover_the_heldout_text(tiny_config, tiny_tokenizer):
  first = loader.make_eval_batches(tiny_config, tiny_tokenizer, 0, 1)
  assert len(first) == tiny_config.eval_batches
  assert_batches_equal(loader.make_eval_batches(tiny_config, tiny_tokenizer, 0, 1), first)

  tiny_config.eval_batches = 1000  # more than the held-out text fills: all of it, then stop
  everything = loader.make_eval_batches(tiny_config, tiny_tokenizer, 0, 1)
  _, held_out, _ = sources.load_splits(tiny_config.data)
  rows = rows_of(everything)
  assert len(everything) == -(-len(rows[rows.any(1)]) // 4) < 1000
  eos = tiny_tokenizer.eos_id
  real = rows[rows != 0]
  assert tiny_tokenizer.decode(real[real != eos]) == "".join(held_out)  # in order, nothing lost
  last = everything[-1]
  padding = last["segment_ids"] == 0
  assert padding.any() and not last["inputs"][padding].any()
  assert not last["loss_weights"][padding].any()


def test_eval_batches_shard_like_training(tiny_config, tiny_tokenizer):
  single = loader.make_eval_batches(tiny_config, tiny_tokenizer, 0, 1)
  halves = [loader.make_eval_batches(tiny_config, tiny_tokenizer, p, 2) for p in range(2)]
  joined = [{k: np.concatenate([h[i][k] for h in halves]) for k in FIELDS}
            for i in range(len(single))]
  assert_batches_equal(joined, single)
