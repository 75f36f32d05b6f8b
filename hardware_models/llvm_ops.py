"""LLVM operations that numba's Python semantics do not give, for the compiled tallies and
the training kernels: each is one instruction or a few, generated at the call site (numba
intrinsics, no call), where numba's own spelling would add branches, checks or conversions
that keep loops from vectorising. Every number-crunching loop in hardware_models and
neuroenergy takes them from here.

Cached compiled code embeds them: the modules that use them list this file among the
dependencies their numba cache is checked against (``_kernel_cache.refresh``).
"""
from llvmlite import ir as llvm_ir
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def _ix(typingctx, i):
    """``i`` (an integer) as an unsigned index, the same bits. numba makes a signed index
    wrap around when negative; LLVM cannot prove ``base + t`` non-negative, and that select
    turns the loads of a vectorised loop into gathers, several times slower (~1.4 ns
    instead of ~0.4 ns a write for a summary loop here). An intrinsic, not an inlined
    function: numba's IR inlining at each of the many call sites cost seconds of
    compilation."""
    if not isinstance(i, types.Integer):
        return None
    sig = types.uint64(i)

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], types.int64)
    return sig, codegen


@intrinsic
def _div(typingctx, a, b):
    """``a / b`` in float64 without Python's ZeroDivisionError branch (a plain IEEE
    division; the parameters never hold a zero divisor)."""
    if not (isinstance(a, types.Number) and isinstance(b, types.Number)):
        return None
    sig = types.float64(a, b)

    def codegen(context, builder, signature, args):
        x = context.cast(builder, args[0], signature.args[0], types.float64)
        y = context.cast(builder, args[1], signature.args[1], types.float64)
        return builder.fdiv(x, y)
    return sig, codegen


@intrinsic
def _sel(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM select (no branch), in the common type of ``a`` and
    ``b``: for data-dependent choices, which a branch would mispredict."""
    ty = a if a == b else typingctx.unify_pairs(a, b)
    if ty is None or not isinstance(cond, types.Boolean):
        return None
    sig = ty(cond, a, b)

    def codegen(context, builder, signature, args):
        x = context.cast(builder, args[1], signature.args[1], signature.return_type)
        y = context.cast(builder, args[2], signature.args[2], signature.return_type)
        return builder.select(args[0], x, y)
    return sig, codegen


@intrinsic
def _pow2(typingctx, k):
    """``2.0 ** k`` exactly, for an integer -1022 <= k <= 1023, from the exponent bits."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        i64 = llvm_ir.IntType(64)
        e = builder.add(args[0], llvm_ir.Constant(i64, 1023))
        return builder.bitcast(builder.shl(e, llvm_ir.Constant(i64, 52)),
                               llvm_ir.DoubleType())
    return sig, codegen


def _unary_intrinsic(name, doc):
    def typer(typingctx, x):
        if not isinstance(x, types.Number):
            return None
        sig = types.float64(x)

        def codegen(context, builder, signature, args):
            fn = builder.module.declare_intrinsic(name, [llvm_ir.DoubleType()])
            return builder.call(fn, [context.cast(builder, args[0], signature.args[0],
                                                  types.float64)])
        return sig, codegen
    typer.__doc__ = doc
    return intrinsic(typer)


_floor = _unary_intrinsic("llvm.floor", "floor(x) as a float64 (no conversion to int).")
_ceil = _unary_intrinsic("llvm.ceil", "ceil(x) as a float64 (no conversion to int).")


@intrinsic
def _popcount(typingctx, x):
    """Set bits of a non-negative int64."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        i64 = llvm_ir.IntType(64)
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [i64])
        return builder.call(ctpop, [args[0]])
    return sig, codegen


@intrinsic
def _bits_of(typingctx, x):
    """The IEEE bit pattern of a float64 as int64: for non-negative values it orders like
    the values, so a row maximum can be an integer maximum (vectorised without fast-math)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))
    return sig, codegen


@intrinsic
def _float_of(typingctx, x):
    """Inverse of :func:`_bits_of`."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())
    return sig, codegen


@intrinsic
def _opaque(typingctx, x):
    """``x`` (float64) through an empty inline-assembly statement: the optimiser cannot see
    that it is the value computed before, so fast-math cannot fold a reciprocal back into
    the division of every write it was computed to avoid."""
    sig = types.float64(types.float64)

    def codegen(context, builder, signature, args):
        dbl = llvm_ir.DoubleType()
        return builder.asm(llvm_ir.FunctionType(dbl, [dbl]), "", "=x,0", [args[0]],
                           side_effect=False)
    return sig, codegen
