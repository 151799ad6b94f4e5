"""Input values: the command-line syntax and JSON files."""

import numpy as np
import pytest

from gradcalc.errors import InputError
from gradcalc.lang.values import parse_json_values, parse_value


@pytest.mark.parametrize("text, expected", [
    ("3", np.array(3.0)),
    ("-2.5", np.array(-2.5)),
    ("2,1", np.array([2.0, 1.0])),
    ("[2,1]", np.array([2.0, 1.0])),
    (" [ 2 , 1 ] ", np.array([2.0, 1.0])),
    ("[[1,2],[3,4]]", np.array([[1.0, 2.0], [3.0, 4.0]])),
    ("[[[1],[2]]]", np.array([[[1.0], [2.0]]])),
    ("1e-3,.5,2.,+4", np.array([1e-3, 0.5, 2.0, 4.0])),
    ("nan,inf,-inf,Infinity", np.array([np.nan, np.inf, -np.inf, np.inf])),
    ("[]", np.zeros((0,))),
    ("[5]", np.array([5.0])),
    ("1e400", np.array(np.inf)),
])
def test_values_parse(text, expected):
    got = parse_value(text, "--x")
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("text", ["1,,2", "0x10", "[[1,2],[3]]", "[1,2", "[1]]", "١٢", "1 2", "[[1],2]",
                                  ",", "", "abc", "[1,]", "1;2", "2**3", "__import__('os')"])
def test_bad_values_name_the_input(text):
    with pytest.raises(InputError) as info:
        parse_value(text, "--x")
    assert info.value.message.startswith("--x:")


def test_json_values():
    values = parse_json_values('{"x": [2, 1], "s": 3, "n": ["nan", "-inf"], "t": NaN}', "v.json")
    assert values["x"].tolist() == [2.0, 1.0]
    assert values["s"].shape == ()
    assert np.isnan(values["n"][0]) and values["n"][1] == -np.inf
    assert np.isnan(values["t"])


@pytest.mark.parametrize("text, fragment", [
    ("[1, 2]", "expected a JSON object"),
    ("{", "not valid JSON"),
    ('{"x": [[1], [2, 3]]}', "input 'x': ragged"),
    ('{"x": "hello"}', "input 'x'"),
    ('{"x": true}', "input 'x'"),
    ('{"x": {"a": 1}}', "input 'x'"),
])
def test_bad_json_values(text, fragment):
    with pytest.raises(InputError) as info:
        parse_json_values(text, "v.json")
    assert fragment in info.value.message
