"""The restricted unpickling shared by tools/convert-weights and tools/convert-stats.

A pickle is a program: plain pickle.load imports and calls whatever the file names. Here the
unpickler answers every global the file asks for from an allow-list of stand-ins that the tool
defines (never the real torch or numpy objects) and refuses everything else before anything is
imported or run. The stand-ins derive from Sealed so that the pickle's BUILD opcode cannot change
them either; those that must accept a state (a numpy array's data, for example) override
__setstate__ and check what they get.

Each tool sets its own error class and wording:

    class Sealed(_safe_pickle.Sealed):
        sealed_error, sealed_note = ToolError, ': not a state dict'

    class Unpickler(_safe_pickle.RestrictedUnpickler):
        allowed = {('collections', 'OrderedDict'): collections.OrderedDict, ...}
        error, refusal = ToolError, ': only ... are allowed'

    obj = _safe_pickle.load(Unpickler(file), ToolError, 'truncated or corrupt pickle')
"""

import pickle


class Sealed:
    """The pickle's BUILD opcode calls __setstate__ when there is one: on everything the file can
    reach (the allowed globals and what they return) it refuses, so that a pickle cannot change
    their attributes. Subclasses name the tool's error class and the end of the message."""

    sealed_error = Exception
    sealed_note = ''

    def __setstate__(self, state):
        raise self.sealed_error(
            f'the pickle tries to change a {type(self).__name__}{self.sealed_note}')


class RestrictedUnpickler(pickle.Unpickler):
    """find_class answers from `allowed`, a dict {(module, name): object}, and raises
    error('refusing the pickle global MODULE.NAME' + refusal) for every other global, without
    importing anything. The EXT opcodes go through find_class too."""

    allowed = {}
    error = Exception
    refusal = ''

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise self.error(f'refusing the pickle global {module}.{name}{self.refusal}') from None


def load(unpickler, error, corrupt):
    """unpickler.load(); the tool's own errors pass through, anything else a damaged or truncated
    pickle can raise becomes error(f'{corrupt} (TYPE: MESSAGE)')."""
    try:
        return unpickler.load()
    except error:
        raise
    except RecursionError:
        raise error('corrupt pickle (nested too deeply)') from None
    except Exception as e:  # anything a damaged or truncated pickle can raise
        raise error(f'{corrupt} ({type(e).__name__}: {e})') from None
