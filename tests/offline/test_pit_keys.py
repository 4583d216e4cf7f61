"""The join's key dictionary: dense integer codes of key tuples, grown batch by batch."""

import numpy as np
import pyarrow as pa

from jstore.offline.pit_keys import KeyDictionary


def test_one_key_column_codes_values_in_the_order_first_seen_and_nulls_as_minus_one():
    keys = KeyDictionary([pa.string()])
    assert keys.encode([pa.array(["b", "a", None, "b"])]).tolist() == [0, 1, -1, 0]
    assert keys.encode([pa.array(["c", "a", "NA", ""])]).tolist() == [2, 1, 3, 4]
    assert keys.keys(np.array([4, 0, 3]))[0].to_pylist() == ["", "b", "NA"]


def test_two_key_columns_code_the_pair_not_each_column():
    keys = KeyDictionary([pa.string(), pa.int64()])
    banks, accounts = pa.array(["x", "x", "y", "y", None]), pa.array([1, 2, 1, 1, 1])
    assert keys.encode([banks, accounts]).tolist() == [0, 1, 2, 2, -1]
    assert keys.encode([pa.array(["y", "x"]), pa.array([2, 2])]).tolist() == [3, 1]
    bank, account = keys.keys(np.array([2, 0, 1, 3]))
    assert bank.to_pylist() == ["y", "x", "x", "y"]
    assert account.to_pylist() == [1, 1, 2, 2]


def test_a_lookup_finds_the_codes_of_tuples_seen_and_codes_nothing_new():
    keys = KeyDictionary([pa.string(), pa.int64()])
    keys.encode([pa.array(["x", "x", "y"]), pa.array([1, 2, 1])])
    found = keys.lookup(
        [pa.array(["y", "x", "y", "z", None, "x"]), pa.array([1, 2, 2, 1, 1, None])]
    )
    assert found.tolist() == [2, 1, -1, -1, -1, -1]
    assert keys.encode([pa.array(["z"]), pa.array([1])]).tolist() == [3]
