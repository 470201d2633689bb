"""The synthetic runners' choices and flags, without TensorFlow (they parse, and answer ``--help``, first)."""
from __future__ import annotations

EXAMPLES = (1, 2, 3, 4)
#: the methods ``synthetic.SOLVER_OPTIONS`` covers, in ``bl.METHODS`` order (a test checks both)
METHODS = ("penalty", "approxgrad", "rmd", "gd", "implicit")


def add_jit_flag(p) -> None:
    """``--no-jit``: XLA is the default for these tiny full-batch problems (an upper step is several times
    faster), except with --smoke where compiling costs more than it saves (``--jit`` forces it)."""
    p.add_argument("--no-jit", dest="jit", action="store_false",
                   help="do not compile with XLA (default: XLA, a tiny upper step is ~8x faster; "
                        "off with --smoke unless --jit is given)")
    p.set_defaults(jit=None)


def resolve_jit(args) -> None:
    if args.jit is None:
        args.jit = not args.smoke
