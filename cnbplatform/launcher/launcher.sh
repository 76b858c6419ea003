#!/bin/sh
# cnb launcher (docs/design.md decision 3; the launcher of https://github.com/buildpacks/spec/blob/main/platform.md).
# POSIX sh: dash and busybox ash. cnbplatform/launcher/script.py fills in the @NAME@ placeholders.
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
# shellcheck disable=SC2016 # a script run later by the process's shell: expanded there, not here
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

# --- exec.d output: a TOML subset, parsed in sh (docs/spec-notes.md section 3.11) ---

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
		_cnb_oct $((192 | (_cnb_n >> 6)))
		_cnb_oct $((128 | (_cnb_n & 63)))
	elif [ "$_cnb_n" -lt 65536 ]; then
		if [ "$_cnb_n" -ge 55296 ] && [ "$_cnb_n" -le 57343 ]; then
			_cnb_bad "surrogate code point in the value of $_cnb_key"
		fi
		_cnb_oct $((224 | (_cnb_n >> 12)))
		_cnb_oct $((128 | ((_cnb_n >> 6) & 63)))
		_cnb_oct $((128 | (_cnb_n & 63)))
	elif [ "$_cnb_n" -le 1114111 ]; then
		_cnb_oct $((240 | (_cnb_n >> 18)))
		_cnb_oct $((128 | ((_cnb_n >> 12) & 63)))
		_cnb_oct $((128 | ((_cnb_n >> 6) & 63)))
		_cnb_oct $((128 | (_cnb_n & 63)))
	else
		_cnb_bad "code point out of range in the value of $_cnb_key"
	fi
	# shellcheck disable=SC2059 # the format is the octal escapes just built
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
# shellcheck disable=SC2102 # the class is filled in with the characters a process type may use
case $_cnb_name in
'' | . | .. | launcher | *[!@TYPECHARS@]*) ;;
*) [ -f "$_cnb_dir/process/$_cnb_name.sh" ] && _cnb_file=$_cnb_dir/process/$_cnb_name.sh ;;
esac
if [ -z "$_cnb_file" ]; then
	case $_cnb_self in
	*/process/"$_cnb_name") _cnb_die "determine start command: process type $_cnb_name was not found" ;;
	esac
fi

# shellcheck disable=SC2154 # _cnb_cmd, _cnb_args, _cnb_user_args come from the compiled file
if [ -n "$_cnb_file" ]; then
	[ -r "$_cnb_file" ] || _cnb_die "read launch environment $_cnb_file"
	# shellcheck source=/dev/null # compiled by the exporter: sets _cnb_cmd, _cnb_args, _cnb_user_args, _cnb_profiles
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
	# shellcheck source=/dev/null # compiled by the exporter
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
# shellcheck disable=SC2154 # _cnb_profiles comes from the compiled file
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
