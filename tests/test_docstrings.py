"""Public docstrings list their arguments, Keras style (issue 12, item 7).

Every function and class exported in ``keras_cprune.__all__`` or ``tflm_export.__all__`` has an
``Args:`` section (``Attributes:`` for a result dataclass) naming each parameter of its signature
(a class: of its constructor), a ``Returns:`` section when it is a function that returns
something, and an ``Example:`` with a ``python`` code block.
"""
import dataclasses
import inspect
import re

import pytest

import keras_cprune
import tflm_export


def public_names() -> list:
    """``"package.name"`` of every exported function or class (modules and constants skipped)."""
    names = []
    for package in (keras_cprune, tflm_export):
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                names.append(f"{package.__name__}.{name}")
    return names


def resolve(qualified: str):
    package, name = qualified.split(".")
    return getattr({"keras_cprune": keras_cprune, "tflm_export": tflm_export}[package], name)


def section(doc: str, *titles: str) -> str | None:
    """The body of the first section of ``doc`` titled one of ``titles`` (``Args:`` on a line of
    its own): its indented lines (an Example's: up to the next title-like line, as its code fence
    sits at the title's indentation); None if there is none."""
    lines = inspect.cleandoc(doc).splitlines()
    for start, line in enumerate(lines):
        if line.strip() in {f"{t}:" for t in titles}:
            indent = len(line) - len(line.lstrip())
            example = line.strip().startswith("Example")
            body = []
            for following in lines[start + 1:]:
                stripped = following.strip()
                if stripped and len(following) - len(following.lstrip()) <= indent and (
                        not example or re.fullmatch(r"[A-Z]\w*( \w+)*:", stripped)):
                    break
                body.append(following)
            return "\n".join(body)
    return None


def documented(body: str) -> set:
    """Argument names the entries of an Args/Attributes section describe: ``name:``,
    ``name (type):``, ``*args, **kwargs:``, each at the section's first indentation."""
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        return set()
    indent = min(len(line) - len(line.lstrip()) for line in lines)
    names = set()
    for line in lines:
        if len(line) - len(line.lstrip()) != indent:
            continue  # a continuation line
        match = re.match(r"\s*([\w*][\w*, ]*?)\s*(\([^)]*\))?:(\s|$)", line)
        if match:
            names |= {part.strip().lstrip("*") for part in match.group(1).split(",")}
    return names


def parameters(obj) -> list:
    """The documented parameters: the signature's (a class: its ``__init__``'s), less self/cls."""
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return [p for p in signature.parameters.values() if p.name not in ("self", "cls")]


def docstring(qualified: str) -> str:
    doc = resolve(qualified).__doc__
    assert doc and doc.strip(), f"{qualified} has no docstring"
    return doc


@pytest.mark.parametrize("qualified", public_names())
def test_args_name_every_parameter(qualified):
    obj, doc = resolve(qualified), docstring(qualified)
    params = parameters(obj)
    body = section(doc, "Args", "Arguments")
    if body is None and dataclasses.is_dataclass(obj):
        body = section(doc, "Attributes")
    if not params:
        return
    assert body is not None, f"{qualified}: no 'Args:' section for parameters {[p.name for p in params]}"
    missing = [p.name for p in params if p.name not in documented(body)]
    assert not missing, f"{qualified}: 'Args:' does not describe {missing}"


@pytest.mark.parametrize("qualified", public_names())
def test_returns_section(qualified):
    obj, doc = resolve(qualified), docstring(qualified)
    if inspect.isclass(obj):
        return  # a constructor returns the instance
    returns = inspect.signature(obj).return_annotation
    if returns in (None, "None"):
        return
    body = section(doc, "Returns")
    assert body is not None and body.strip(), f"{qualified}: no 'Returns:' section"


@pytest.mark.parametrize("qualified", public_names())
def test_example_section(qualified):
    doc = docstring(qualified)
    body = section(doc, "Example", "Examples")
    assert body is not None and "```python" in body, f"{qualified}: no 'Example:' with a ```python block"


def test_the_check_can_fail():
    """The parser rejects a docstring that forgets a parameter or a section."""
    def good(model, ratio=0.5, **options):
        """Summary.

        Args:
            model: a model.
            ratio (float): a fraction,
                continued here: not an entry.
            **options: passed on.

        Returns:
            A thing.
        """

    assert documented(section(good.__doc__, "Args")) == {"model", "ratio", "options"}
    assert "A thing." in section(good.__doc__, "Returns")
    assert section(good.__doc__, "Example") is None
    assert "continued" not in documented(section(good.__doc__, "Args"))
    assert "model" not in documented(section("Summary.\n\nArgs:\n    ratio: a fraction.\n\nReturns:\n"
                                             "    model: not an arg.\n", "Args"))
    misspelt = "Summary.\n\nArgs:\n    ratio: a fraction.\n\nGives:\n    a thing.\n"
    assert section(misspelt, "Returns") is None and documented(section(misspelt, "Args")) == {"ratio"}
    example = "Summary.\n\nExample:\n\n```python\nf(1)\n```\n\nNote:\n    more.\n"
    assert section(example, "Example").strip() == "```python\nf(1)\n```"


def test_every_public_name_is_checked():
    """Nothing slips through: the checked names are the exported functions and classes."""
    names = public_names()
    assert "keras_cprune.analyze" in names and "tflm_export.convert" in names
    assert "keras_cprune.callbacks" not in names and "tflm_export.BOARDS" not in names
