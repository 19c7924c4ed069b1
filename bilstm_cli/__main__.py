"""``python -m bilstm_cli``: the same command line as ``bilstm``, under the same name in --help
and in the shell-completion variable (``_BILSTM_COMPLETE``)."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="bilstm")
