"""The launcher that goes into every app image: a POSIX ``sh`` script (DESIGN.md §3 decision 3; CNB-SPEC.md §9).

``/cnb/lifecycle/launcher`` is this script and every ``/cnb/process/<type>`` is a symlink to it, so the process
type is ``basename "$0"`` (§9.1). It runs under dash and busybox ``sh`` (ash); nothing in it needs bash.

It never parses TOML and never reads env dirs: the exporter compiled each process's environment into shell code
(:mod:`cnbplatform.launcher.compile`) under ``<layers>/config/launch/`` (``process/<type>.sh`` for a process type,
``direct.sh`` for a command given on the command line). At run time the script:

1. removes ``CNB_LAYERS_DIR CNB_APP_DIR CNB_PROCESS_TYPE CNB_PLATFORM_API CNB_DEPRECATION_MODE`` from the
   environment and the ``/cnb/process`` and ``/cnb/lifecycle`` entries from ``PATH`` (§9.2 step 1);
2. picks the process (§9.1): a type from argv0 that has a compiled file and is eligible for ``CNB_EXEC_ENV``
   (user args replace or follow the process args); argv0 ``.../process/<type>`` without one is "not found";
   any other name (``launcher``) takes ``launcher -- cmd args`` (direct) or ``launcher cmd args`` (shell), and no
   command at all is an error. ``CNB_PLATFORM_API`` is not checked: the files were compiled for the exporter's;
3. ``cd <app>``, applies the compiled environment (§9.2 step 3, §3.8);
4. runs the exec.d programs with fd 3 connected to a pipe and exports the ``KEY = "value"`` lines they write there
   before the next one runs (§3.11, §9.2 step 4); the TOML subset (bare keys, basic strings with escapes, literal
   strings, comments) is parsed in ``sh``;
5. direct processes: ``cd <working-dir>`` and ``exec`` the command (PATH lookup, no profile scripts, §9.2 step 6);
   shell processes: ``exec`` a shell that sources the profile.d scripts and ``<app>/.profile`` (§3.12), changes to
   the working dir and runs the command (§9.2 step 7). The shell is ``/bin/bash`` when the image has it, else
   ``/bin/sh`` (the spec says bash; a busybox image has none).

Every failure of the launcher itself exits 82 (§1.3); after ``exec`` the exit code is the process's own. As with any
shell, ``PWD`` in the process env is its working dir (busybox ash also exports ``SHLVL``, as bash does);
``OLDPWD`` is removed unless the caller gave it.
Internal variables start with ``_cnb_``; exec.d output may not set such names.
"""

from __future__ import annotations

#: Where the launcher lives in an app image (CNB-SPEC.md §6.1 item 5).
LAUNCHER_PATH = "/cnb/lifecycle/launcher"
#: The lifecycle directory; its entry is removed from ``PATH`` at launch (§9.2 step 1).
LIFECYCLE_DIR = "/cnb/lifecycle"
#: ``/cnb/process/<type>`` symlinks point at :data:`LAUNCHER_PATH` (§6.1 item 7).
PROCESS_DIR = "/cnb/process"
#: Exit code of every launcher-side failure (§1.3).
LAUNCHER_ERROR_EXIT = 82
#: Variables removed from the environment before anything else (§9.2 step 1).
STRIPPED_VARS = ("CNB_LAYERS_DIR", "CNB_APP_DIR", "CNB_PROCESS_TYPE", "CNB_PLATFORM_API", "CNB_DEPRECATION_MODE")

_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_TYPE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

# Run by the shell of a shell process when the command has arguments (§9.2 step 7, LC's "tokens" form): each
# token is expanded like a double-quoted word (variables, command substitution), then the result is exec'd.
_TOKENS = """for _cnb_t do
\tshift
\t_cnb_t=$(eval "printf '%s\\\\n' \\"$_cnb_t\\"")
\tset -- "$@" "$_cnb_t"
done
exec "$@"
"""

_TEMPLATE = r"""#!/bin/sh
# cnb launcher (DESIGN.md section 3 decision 3, CNB-SPEC.md section 9). POSIX sh: dash and busybox ash.
# The environment of each process was compiled at export time into <layers>/config/launch/.
_cnb_self=$0
_cnb_name=${0##*/}
_cnb_layers=${CNB_LAYERS_DIR:-/layers}
_cnb_app=${CNB_APP_DIR:-/workspace}
_cnb_dir=$_cnb_layers/config/launch
_cnb_oldpwd=${OLDPWD+set}
_cnb_nl='
'
_cnb_tab='@TAB@'
_cnb_cr='@CR@'
_cnb_tokens=@TOKENS@

_cnb_die() {
	printf 'ERROR: failed to launch: %s\n' "$1" >&2
	exit 82
}

_cnb_warn() {
	printf 'Warning: %s\n' "$1" >&2
}

# cd exports OLDPWD: drop it unless the caller gave it (PWD stays: it is the working dir)
_cnb_restore() {
	[ -n "$_cnb_oldpwd" ] || unset OLDPWD
}

# _cnb_quote WORD: _cnb_q = WORD quoted for sh
_cnb_quote() {
	_cnb_r=$1
	_cnb_q=
	while :; do
		case $_cnb_r in
		*\'*)
			_cnb_q=$_cnb_q${_cnb_r%%\'*}\'\\\'\'
			_cnb_r=${_cnb_r#*\'}
			;;
		*) break ;;
		esac
	done
	_cnb_q=\'$_cnb_q$_cnb_r\'
}

# _cnb_lookup CMD: true if exec would find CMD (a path, or a name on PATH)
_cnb_lookup() {
	case $1 in
	*/*)
		[ -f "$1" ] && [ -x "$1" ]
		return
		;;
	esac
	[ -n "${PATH+set}" ] || return 0
	_cnb_r=$PATH:
	while [ -n "$_cnb_r" ]; do
		_cnb_e=${_cnb_r%%:*}
		_cnb_r=${_cnb_r#*:}
		if [ -f "${_cnb_e:-.}/$1" ] && [ -x "${_cnb_e:-.}/$1" ]; then
			return 0
		fi
	done
	return 1
}

# --- exec.d output: a TOML subset, parsed in sh (CNB-SPEC.md section 3.11) ---

_cnb_bad() {
	_cnb_die "exec.d: failed to decode output from exec.d file at path '$_cnb_xpath': $1"
}

_cnb_ltrim() {
	while :; do
		case $_cnb_s in
		" "* | "$_cnb_tab"*) _cnb_s=${_cnb_s#?} ;;
		*) return 0 ;;
		esac
	done
}

# _cnb_oct BYTE: append \ooo (a printf format escape) to _cnb_fmt
_cnb_oct() {
	_cnb_fmt=$_cnb_fmt\\$(($1 / 64))$(($1 / 8 % 8))$(($1 % 8))
}

# _cnb_code N: append code point N, UTF-8 encoded, to _cnb_val
_cnb_code() {
	_cnb_n=$1
	_cnb_fmt=
	if [ "$_cnb_n" -eq 0 ]; then
		_cnb_bad "NUL in the value of $_cnb_key"
	elif [ "$_cnb_n" -lt 128 ]; then
		_cnb_oct "$_cnb_n"
	elif [ "$_cnb_n" -lt 2048 ]; then
		_cnb_oct $((192 | ($_cnb_n >> 6)))
		_cnb_oct $((128 | ($_cnb_n & 63)))
	elif [ "$_cnb_n" -lt 65536 ]; then
		if [ "$_cnb_n" -ge 55296 ] && [ "$_cnb_n" -le 57343 ]; then
			_cnb_bad "surrogate code point in the value of $_cnb_key"
		fi
		_cnb_oct $((224 | ($_cnb_n >> 12)))
		_cnb_oct $((128 | (($_cnb_n >> 6) & 63)))
		_cnb_oct $((128 | ($_cnb_n & 63)))
	elif [ "$_cnb_n" -le 1114111 ]; then
		_cnb_oct $((240 | ($_cnb_n >> 18)))
		_cnb_oct $((128 | (($_cnb_n >> 12) & 63)))
		_cnb_oct $((128 | (($_cnb_n >> 6) & 63)))
		_cnb_oct $((128 | ($_cnb_n & 63)))
	else
		_cnb_bad "code point out of range in the value of $_cnb_key"
	fi
	_cnb_c=$(printf "${_cnb_fmt}x")
	_cnb_val=$_cnb_val${_cnb_c%x}
}

# _cnb_hex DIGITS: _cnb_s starts with u or U followed by DIGITS hex digits; decode them
_cnb_hex() {
	_cnb_h=${_cnb_s#?}
	_cnb_d=
	_cnb_i=0
	while [ "$_cnb_i" -lt "$1" ]; do
		case $_cnb_h in
		[0123456789abcdefABCDEF]*) ;;
		*) _cnb_bad "invalid unicode escape in the value of $_cnb_key" ;;
		esac
		_cnb_tail=${_cnb_h#?}
		_cnb_d=$_cnb_d${_cnb_h%"$_cnb_tail"}
		_cnb_h=$_cnb_tail
		_cnb_i=$((_cnb_i + 1))
	done
	_cnb_s=u$_cnb_h
	_cnb_code $((0x$_cnb_d))
}

# basic string: _cnb_s starts with a double quote
_cnb_basic() {
	_cnb_s=${_cnb_s#?}
	_cnb_val=
	while :; do
		_cnb_a=${_cnb_s%%\"*}
		[ "$_cnb_a" != "$_cnb_s" ] || _cnb_bad "unterminated string for $_cnb_key"
		_cnb_b=${_cnb_s%%\\*}
		if [ "${#_cnb_b}" -ge "${#_cnb_a}" ]; then
			_cnb_val=$_cnb_val$_cnb_a
			_cnb_s=${_cnb_s#"$_cnb_a"}
			_cnb_s=${_cnb_s#?}
			return 0
		fi
		_cnb_val=$_cnb_val$_cnb_b
		_cnb_s=${_cnb_s#"$_cnb_b"}
		_cnb_s=${_cnb_s#?}
		case $_cnb_s in
		n*) _cnb_val=$_cnb_val$_cnb_nl ;;
		t*) _cnb_val=$_cnb_val$_cnb_tab ;;
		r*) _cnb_val=$_cnb_val$_cnb_cr ;;
		\"*) _cnb_val=$_cnb_val\" ;;
		\\*) _cnb_val=$_cnb_val\\ ;;
		b*) _cnb_code 8 ;;
		f*) _cnb_code 12 ;;
		e*) _cnb_code 27 ;;
		u*) _cnb_hex 4 ;;
		U*) _cnb_hex 8 ;;
		*) _cnb_bad "invalid escape in the value of $_cnb_key" ;;
		esac
		_cnb_s=${_cnb_s#?}
	done
}

# parse _cnb_out and export every KEY = "value" pair
_cnb_toml() {
	_cnb_rest=$_cnb_out$_cnb_nl
	while [ -n "$_cnb_rest" ]; do
		_cnb_s=${_cnb_rest%%"$_cnb_nl"*}
		_cnb_rest=${_cnb_rest#*"$_cnb_nl"}
		_cnb_s=${_cnb_s%"$_cnb_cr"}
		_cnb_ltrim
		case $_cnb_s in
		'' | '#'*) continue ;;
		esac
		_cnb_key=${_cnb_s%%[!@KEYCHARS@]*}
		_cnb_s=${_cnb_s#"$_cnb_key"}
		[ -n "$_cnb_key" ] || _cnb_bad "expected a bare key in line '$_cnb_s'"
		_cnb_ltrim
		case $_cnb_s in
		=*) _cnb_s=${_cnb_s#?} ;;
		*) _cnb_bad "expected '=' after $_cnb_key" ;;
		esac
		_cnb_ltrim
		case $_cnb_s in
		\"*) _cnb_basic ;;
		\'*)
			_cnb_s=${_cnb_s#?}
			case $_cnb_s in
			*\'*) ;;
			*) _cnb_bad "unterminated string for $_cnb_key" ;;
			esac
			_cnb_val=${_cnb_s%%\'*}
			_cnb_s=${_cnb_s#*\'}
			;;
		*) _cnb_bad "expected a string value for $_cnb_key" ;;
		esac
		_cnb_ltrim
		case $_cnb_s in
		'' | '#'*) ;;
		*) _cnb_bad "unexpected text after the value of $_cnb_key" ;;
		esac
		case $_cnb_key in
		[0123456789]* | *-*) _cnb_warn "exec.d file '$_cnb_xpath' set $_cnb_key, which sh cannot export; ignored" ;;
		_cnb_*) _cnb_warn "exec.d file '$_cnb_xpath' set $_cnb_key, a name reserved by the launcher; ignored" ;;
		*) export "$_cnb_key=$_cnb_val" ;;
		esac
	done
}

# _cnb_x PATH: run one exec.d program (stdin /dev/null as in LC) with fd 3 as its output channel; called by the
# compiled _cnb_execd
_cnb_x() {
	_cnb_xpath=$1
	{ _cnb_out=$("$1" 3>&1 1>&9 9>&- </dev/null); } 9>&1 ||
		_cnb_die "exec.d: failed to execute exec.d file at path '$1' (exit status $?)"
	_cnb_toml
}

# --- section 9.2 step 1: the launcher's own variables leave the environment ---
if [ -n "${CNB_PROCESS_TYPE-}" ]; then
	_cnb_warn "CNB_PROCESS_TYPE is not supported; run /cnb/process/<type> to launch a process type"
fi
unset CNB_LAYERS_DIR CNB_APP_DIR CNB_PROCESS_TYPE CNB_PLATFORM_API CNB_DEPRECATION_MODE
if [ -n "${PATH+set}" ]; then
	_cnb_r=$PATH:
	_cnb_new=
	_cnb_first=1
	while [ -n "$_cnb_r" ]; do
		_cnb_e=${_cnb_r%%:*}
		_cnb_r=${_cnb_r#*:}
		case $_cnb_e in
		/cnb/process | /cnb/process/ | /cnb/lifecycle | /cnb/lifecycle/) continue ;;
		esac
		if [ -n "$_cnb_first" ]; then
			_cnb_new=$_cnb_e
			_cnb_first=
		else
			_cnb_new=$_cnb_new:$_cnb_e
		fi
	done
	PATH=$_cnb_new
	export PATH
fi

# --- section 9.1: which process ---
_cnb_file=
case $_cnb_name in
'' | . | .. | launcher | *[!@TYPECHARS@]*) ;;
*) [ -f "$_cnb_dir/process/$_cnb_name.sh" ] && _cnb_file=$_cnb_dir/process/$_cnb_name.sh ;;
esac
if [ -z "$_cnb_file" ]; then
	case $_cnb_self in
	*/process/"$_cnb_name") _cnb_die "determine start command: process type $_cnb_name was not found" ;;
	esac
fi

if [ -n "$_cnb_file" ]; then
	[ -r "$_cnb_file" ] || _cnb_die "read launch environment $_cnb_file"
	. "$_cnb_file"
	_cnb_eligible "${CNB_EXEC_ENV:-production}" ||
		_cnb_die "determine start command: process type $_cnb_name was not found"
	if [ $# -eq 0 ]; then
		eval "set -- $_cnb_cmd $_cnb_args"
	elif [ "$_cnb_user_args" = append ]; then
		eval "set -- $_cnb_cmd $_cnb_args \"\$@\""
	else
		eval "set -- $_cnb_cmd \"\$@\""
	fi
else
	[ $# -gt 0 ] || _cnb_die "determine start command: when there is no default process a command is required"
	[ -r "$_cnb_dir/direct.sh" ] || _cnb_die "read launch environment $_cnb_dir/direct.sh"
	. "$_cnb_dir/direct.sh"
	_cnb_direct=0
	if [ "$1" = -- ]; then
		shift
		[ $# -gt 0 ] || _cnb_die "determine start command: when there is no default process a command is required"
		_cnb_direct=1
	fi
	_cnb_workdir=$_cnb_app
fi

# --- section 9.2 steps 2-4: app dir, compiled environment, exec.d ---
cd "$_cnb_app" || _cnb_die "change to app directory $_cnb_app"
_cnb_env
_cnb_execd

# --- section 9.2 steps 5-7 ---
if [ "$_cnb_direct" = 1 ]; then
	cd "$_cnb_workdir" || _cnb_die "change directory to $_cnb_workdir"
	_cnb_lookup "$1" || _cnb_die "path lookup: executable file '$1' not found in \$PATH"
	_cnb_restore
	exec "$@"
fi
if [ -x /bin/bash ]; then
	_cnb_shell=/bin/bash
else
	_cnb_shell=/bin/sh
fi
_cnb_quote "$_cnb_app/.profile"
_cnb_script="${_cnb_profiles}if [ -f $_cnb_q ]; then . $_cnb_q; fi
"
_cnb_quote "$_cnb_workdir"
_cnb_script="${_cnb_script}cd $_cnb_q || exit 82
"
if [ $# -eq 1 ]; then
	_cnb_script="${_cnb_script}exec $_cnb_shell -c \"\$1\""
else
	_cnb_script=$_cnb_script$_cnb_tokens
fi
_cnb_restore
exec "$_cnb_shell" -c "$_cnb_script" "$_cnb_self" "$@"
"""


def sh_quote(value: bytes) -> bytes:
    """*value* as one single-quoted ``sh`` word (every byte kept; ``'`` becomes ``'\\''``)."""
    return b"'" + value.replace(b"'", b"'\\''") + b"'"


def _render() -> bytes:
    text = (
        _TEMPLATE.replace("@TAB@", "\t")
        .replace("@CR@", "\r")
        .replace("@KEYCHARS@", _KEY_CHARS)
        .replace("@TYPECHARS@", _TYPE_CHARS)
    )
    return text.replace("@TOKENS@", sh_quote(_TOKENS.encode()).decode()).encode()


#: The launcher script, exactly as it is written to :data:`LAUNCHER_PATH` (mode 0755).
LAUNCHER_SCRIPT: bytes = _render()


def launcher_script() -> bytes:
    """The bytes of ``/cnb/lifecycle/launcher`` (CNB-SPEC.md §9; DESIGN.md §3 decision 3)."""
    return LAUNCHER_SCRIPT
