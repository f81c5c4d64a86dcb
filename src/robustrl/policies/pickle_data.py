"""Reading a Python pickle as plain data, without running it.

``pickle.load`` executes its input: each ``GLOBAL`` imports a name and each ``REDUCE`` calls it, so a pickle
can run any code (``os.system``). :func:`read_pickle_data` never uses :mod:`pickle`. It walks the opcode
stream with :func:`pickletools.genops` (which only decodes each opcode's argument) and interprets it on a
small stack machine of its own that imports nothing and calls nothing from the file:

* data opcodes build None, bool, int, float, str, bytes, tuple, list, dict, set and frozenset values;
* a global must be on the caller's allowlist of record classes or be one of numpy's array, dtype and
  scalar constructors (or ``collections.OrderedDict``, read as a dict); any other global is refused. A
  global is never imported: it stays a name;
* ``NEWOBJ``/``REDUCE`` of a record class and ``BUILD`` on the result give a :class:`Record` (the class
  name, the arguments, the state): the object *as data*, never instantiated;
* numpy's constructors are interpreted here: an array is ``np.frombuffer`` of the raw bytes in the
  pickle, for a plain numeric dtype (bool, signed and unsigned integers, float16/32/64), after checking
  that the byte count matches the shape; a scalar likewise (it becomes a Python number);
* everything else is refused: persistent ids, extension codes, ``INST``/``OBJ``/``NEWOBJ_EX``,
  out-of-band buffers, ``REDUCE`` of anything but the constructors above, dict keys and set items that are
  not plain scalars (so nothing nested is ever hashed), more than ``max_ops`` opcodes.

Work and memory are linear in the input: every value comes from the pickle's own bytes (an array is a
view of them), the memo is a dict (a ``LONG_BINPUT 4294967295`` allocates nothing), no step recurses.
Failures raise :class:`~robustrl.policies.reading.PolicyFileError` naming the file.
"""

from __future__ import annotations

import math
import pickletools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.policies.reading import PolicyFileError, policy_file_error

MAX_ARRAY_DIMS = 32
"""Most dimensions of an array read from a pickle (numpy's own limit is 64)."""

_SCALAR_TYPES = (str, bytes, int, float, bool, type(None))
_DTYPE_CODES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
_BYTE_ORDERS = frozenset({"<", ">", "|", "="})
_NUMPY_MODULES = ("numpy.core", "numpy._core")  # numpy < 2 and numpy ≥ 2
_CONSTANTS: dict[str, Any] = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_ARG_OPCODES = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
})  # fmt: skip
"""Opcodes that push their (decoded) argument."""


@dataclass(frozen=True)
class Global:
    """A global named by the pickle: a name only, never imported."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Record:
    """An object of an allowlisted class, as data: the class is never imported or instantiated."""

    kind: str
    """The class's ``module.name``."""
    args: tuple[Any, ...]
    """The arguments of its ``NEWOBJ``/``REDUCE``."""
    state: Any = None
    """What ``BUILD`` gave it (usually its ``__dict__``); None before."""
    built: bool = False
    """Whether ``BUILD`` ran on it."""


@dataclass(eq=False)
class _DType:
    """A numpy dtype under construction (``numpy.dtype(code, align, copy)`` then ``BUILD``)."""

    code: str
    byteorder: str | None = None

    def numpy(self) -> np.dtype[Any] | None:
        return None if self.byteorder is None else np.dtype(self.byteorder + self.code)


@dataclass(eq=False)
class PickledArray:
    """A numpy array from a pickle (``_reconstruct`` then ``BUILD``); ``array`` is None until built."""

    array: np.ndarray | None = None
    """A read-only view of the pickle's bytes."""


def _describe(value: Any) -> str:
    """A short, safe description of a value from the pickle (never a deep or huge repr)."""
    if isinstance(value, bool | type(None)) or (isinstance(value, int) and abs(value) < 1 << 64):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return f"{value!r:.60}"
    if isinstance(value, Record):
        return f"a {value.kind} object"
    if isinstance(value, Global):
        return f"the global {value.qualname!r:.100}"
    if isinstance(value, _DType):
        return "a numpy dtype"
    if isinstance(value, PickledArray):
        return "a numpy array"
    return f"a {type(value).__name__}"


class _Machine:
    """The stack machine (one per read)."""

    def __init__(self, path: Path, records: frozenset[str]) -> None:
        self.path = path
        self.records = records
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.reducers: dict[str, Callable[[tuple[Any, ...]], Any]] = {
            "numpy.dtype": self._dtype,
            "collections.OrderedDict": self._ordered_dict,
        }
        for module in _NUMPY_MODULES:
            self.reducers[f"{module}.multiarray._reconstruct"] = self._reconstruct
            self.reducers[f"{module}.multiarray.scalar"] = self._scalar
            self.reducers[f"{module}.numeric._frombuffer"] = self._frombuffer

    def fail(self, what: str) -> PolicyFileError:
        return policy_file_error(self.path, what)

    # ---------------------------------------------------------------------------------------- stack

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("is a corrupt pickle (pops from an empty stack)")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("is a corrupt pickle (reads an empty stack)")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("is a corrupt pickle (no MARK to pop)")
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def scalar_key(self, key: Any, what: str) -> Any:
        if not isinstance(key, _SCALAR_TYPES):
            raise self.fail(f"uses {_describe(key)} as a {what}; only plain scalars are accepted")
        return key

    def container(self, kind: type[Any], op: str) -> Any:
        target = self.top()
        if type(target) is not kind:
            raise self.fail(f"applies {op} to {_describe(target)}")
        return target

    def set_items(self, items: list[Any]) -> None:
        target = self.container(dict, "SETITEMS")
        if len(items) % 2:
            raise self.fail("is a corrupt pickle (SETITEMS with an odd number of items)")
        for i in range(0, len(items), 2):
            target[self.scalar_key(items[i], "dict key")] = items[i + 1]

    # -------------------------------------------------------------------------------------- globals

    def global_(self, module: Any, name: Any) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise self.fail("is a corrupt pickle (a global whose name is not a string)")
        token = Global(module, name)
        known = token.qualname in self.reducers or token.qualname in self.records
        if not known and token.qualname != "numpy.ndarray":
            raise self.fail(
                f"refers to the global {token.qualname!r:.120}, which is not allowed: only numpy arrays and "
                "the expected classes are read, as data (the pickle is never run)"
            )
        return token

    def reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, Global) or not isinstance(args, tuple):
            raise self.fail(f"calls {_describe(func)}, which is refused")
        if func.qualname in self.records:
            return Record(func.qualname, args)
        handler = self.reducers.get(func.qualname)
        if handler is None:
            raise self.fail(f"calls {_describe(func)}, which is refused")
        return handler(args)

    def newobj(self, cls: Any, args: Any) -> Record:
        if not isinstance(cls, Global) or cls.qualname not in self.records or not isinstance(args, tuple):
            raise self.fail(f"instantiates {_describe(cls)}, which is refused")
        return Record(cls.qualname, args)

    def build(self, inst: Any, state: Any) -> None:
        if isinstance(inst, Record):
            if inst.built:
                raise self.fail(f"sets the state of {_describe(inst)} twice")
            inst.state, inst.built = state, True
        elif isinstance(inst, _DType):
            self._build_dtype(inst, state)
        elif isinstance(inst, PickledArray):
            self._build_array(inst, state)
        else:
            raise self.fail(f"sets the state of {_describe(inst)}, which is refused")

    # ---------------------------------------------------------------------------------------- numpy

    def _dtype(self, args: tuple[Any, ...]) -> _DType:
        code_ok = len(args) == 3 and isinstance(args[0], str) and args[0] in _DTYPE_CODES
        if not code_ok or not all(isinstance(a, bool) for a in args[1:]):
            code = _describe(args[0]) if args else "nothing"
            raise self.fail(
                f"has a numpy dtype {code} that is not read (only bool, integer and float16/32/64 arrays are)"
            )
        return _DType(args[0])

    def _build_dtype(self, dtype: _DType, state: Any) -> None:
        if (
            dtype.byteorder is not None
            or not isinstance(state, tuple)
            or len(state) not in (8, 9)
            or not isinstance(state[1], str)
            or state[1] not in _BYTE_ORDERS
            or any(part is not None for part in state[2:5])
        ):
            raise self.fail(f"has a numpy dtype {dtype.code!r} with an unsupported state (structured or subarray)")
        dtype.byteorder = state[1]

    def _complete_dtype(self, value: Any) -> np.dtype[Any]:
        dtype = value.numpy() if isinstance(value, _DType) else None
        if dtype is None:
            raise self.fail(f"gives {_describe(value)} where a numpy dtype belongs")
        return dtype

    def _reconstruct(self, args: tuple[Any, ...]) -> PickledArray:
        if len(args) != 3 or args[0] != Global("numpy", "ndarray"):
            raise self.fail("calls numpy's _reconstruct for something other than an ndarray")
        return PickledArray()

    def _build_array(self, target: PickledArray, state: Any) -> None:
        if target.array is not None:
            raise self.fail("sets the state of a numpy array twice")
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, data); older pickles omit the version
        if not isinstance(state, tuple) or len(state) != 4:
            raise self.fail("has a numpy array with an unreadable state")
        shape, dtype_value, fortran, raw = state
        if (
            not isinstance(shape, tuple)
            or len(shape) > MAX_ARRAY_DIMS
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise self.fail(f"has a numpy array whose shape is not up to {MAX_ARRAY_DIMS} sizes")
        dtype = self._complete_dtype(dtype_value)
        if not isinstance(fortran, bool) or not isinstance(raw, bytes):
            raise self.fail("has a numpy array whose data is not raw bytes (object arrays are not read)")
        n = math.prod(shape)
        if n * dtype.itemsize != len(raw):
            raise self.fail(
                f"has a numpy array of shape {shape} and dtype {dtype} in {len(raw)} bytes "
                f"(it needs {n * dtype.itemsize})"
            )
        target.array = np.frombuffer(raw, dtype=dtype, count=n).reshape(shape, order="F" if fortran else "C")

    def _frombuffer(self, args: tuple[Any, ...]) -> PickledArray:
        """Protocol 5 arrays: ``_frombuffer(buffer, dtype, shape, order)`` with the buffer in band."""
        if len(args) != 4 or not isinstance(args[3], str) or args[3] not in ("C", "F"):
            raise self.fail("has a numpy array (protocol 5) with an unreadable state")
        array = PickledArray()
        self._build_array(array, (args[2], args[1], args[3] == "F", args[0]))
        return array

    def _ordered_dict(self, args: tuple[Any, ...]) -> dict[Any, Any]:
        """``OrderedDict()`` (its items follow as ``SETITEMS``): a plain dict, which keeps the order too."""
        if args != ():
            raise self.fail("calls collections.OrderedDict with arguments, which is refused")
        return {}

    def _scalar(self, args: tuple[Any, ...]) -> Any:
        if len(args) != 2:
            raise self.fail("has a numpy scalar with an unreadable state")
        dtype = self._complete_dtype(args[0])
        if not isinstance(args[1], bytes) or len(args[1]) != dtype.itemsize:
            raise self.fail(f"has a numpy {dtype} scalar that is not {dtype.itemsize} raw bytes")
        return np.frombuffer(args[1], dtype=dtype, count=1)[0].item()

    # -------------------------------------------------------------------------------------- opcodes

    def step(self, name: str, arg: Any) -> None:
        """Apply one opcode (everything but STOP, PROTO and FRAME)."""
        push = self.push  # not self.stack.append: MARK and pop_mark replace self.stack
        if name in _ARG_OPCODES:
            push(arg)
        elif name in _CONSTANTS:
            push(_CONSTANTS[name])
        elif name == "BYTEARRAY8":
            push(bytes(arg))
        elif name == "MARK":
            self.marks.append(self.stack)
            self.stack = []
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            push(self.top())
        elif name == "EMPTY_TUPLE":
            push(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(self.stack) < n:
                raise self.fail("is a corrupt pickle (a tuple of missing items)")
            top = tuple(self.stack[-n:])
            del self.stack[-n:]
            push(top)
        elif name == "TUPLE":
            push(tuple(self.pop_mark()))
        elif name == "EMPTY_LIST":
            push([])
        elif name == "LIST":
            push(self.pop_mark())
        elif name == "APPEND":
            value = self.pop()
            self.container(list, "APPEND").append(value)
        elif name == "APPENDS":
            items = self.pop_mark()
            self.container(list, "APPENDS").extend(items)
        elif name == "EMPTY_DICT":
            push({})
        elif name == "DICT":
            items = self.pop_mark()
            push({})
            self.set_items(items)
        elif name == "SETITEM":
            value = self.pop()
            key = self.pop()
            self.set_items([key, value])
        elif name == "SETITEMS":
            self.set_items(self.pop_mark())
        elif name == "EMPTY_SET":
            push(set())
        elif name == "ADDITEMS":
            items = self.pop_mark()
            self.container(set, "ADDITEMS").update(self.scalar_key(i, "set item") for i in items)
        elif name == "FROZENSET":
            push(frozenset(self.scalar_key(i, "set item") for i in self.pop_mark()))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise self.fail(f"is a corrupt pickle (memo entry {arg} is missing)")
            push(self.memo[arg])
        elif name == "GLOBAL":
            module, _, qualname = str(arg).partition(" ")
            push(self.global_(module, qualname))
        elif name == "STACK_GLOBAL":
            qualname = self.pop()
            push(self.global_(self.pop(), qualname))
        elif name == "REDUCE":
            args = self.pop()
            push(self.reduce(self.pop(), args))
        elif name == "NEWOBJ":
            args = self.pop()
            push(self.newobj(self.pop(), args))
        elif name == "BUILD":
            state = self.pop()
            self.build(self.top(), state)
        else:  # PERSID, BINPERSID, EXT1/2/4, INST, OBJ, NEWOBJ_EX, NEXT_BUFFER, READONLY_BUFFER
            raise self.fail(f"uses the pickle opcode {name}, which is refused")


def read_pickle_data(data: bytes, path: Path, *, records: Iterable[str], max_ops: int) -> Any:
    """Interpret a pickle as plain data (see the module docstring); nothing in it is imported or run.

    Args:
        data: the pickle's bytes (already size-capped by the caller).
        path: the file, for messages.
        records: ``module.name`` of the classes whose objects may appear, each read as a :class:`Record`.
        max_ops: the most opcodes accepted.

    Returns:
        The pickled value, made of plain Python values, :class:`Record`, :class:`PickledArray` (numpy
        arrays) and :class:`Global` (allowlisted names given as values).

    Raises:
        PolicyFileError: the bytes are not a pickle, are truncated, use a refused opcode or global, or
            exceed ``max_ops`` opcodes.
    """
    machine = _Machine(path, frozenset(records))
    count = 0
    try:
        for opcode, arg, _ in pickletools.genops(data):
            count += 1
            if count > max_ops:
                raise machine.fail(f"has more than {max_ops} pickle opcodes")
            name = opcode.name
            if name == "PROTO":
                if not isinstance(arg, int) or not 2 <= arg <= 5:
                    raise machine.fail(f"is a pickle of unsupported protocol {_describe(arg)}")
            elif name == "STOP":
                if len(machine.stack) != 1 or machine.marks:
                    raise machine.fail("is a corrupt pickle (its stack does not end with one value)")
                return machine.stack[0]
            elif name != "FRAME":
                machine.step(name, arg)
    except PolicyFileError:
        raise
    except Exception as err:  # pickletools raises ValueError on bad or truncated bytes; anything else is a bad file
        raise policy_file_error(
            path, f"is not a readable pickle ({type(err).__name__} at opcode {count}: {str(err)[:200]})"
        ) from err
    raise policy_file_error(path, "is a truncated pickle (no STOP opcode)")
