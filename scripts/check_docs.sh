#!/usr/bin/env bash
# The docs check (a ctest test): run from anywhere; it works from the repository root.
#  (a) every function named as `name()` in the walk section of docs/architecture.md
#      ("The walk of one token") is defined in core/, app/ or views/;
#  (b) no file outside docs/ cites a document that is not in the repo: the old design notes, the
#      old spec sections or the research notes it came from, or the folder they live in; every
#      "*.md" a file names exists; every relative link in README.md, CONTRIBUTING.md and docs/*.md
#      points at a file or folder inside the repo;
#  (c) every citation of a section of docs/architecture.md in any file ("architecture.md §N",
#      "architecture §N.M", and lists or ranges after it: "§6, §7", "§11.1–§11.4") names a section
#      that exists: a heading "## N." or "### N.M" of that page. Its sections are numbered by
#      structure, so a reorganisation renumbers them; this catches a citation left behind.
# Prints one line per problem and exits 1 when there is any.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd -P)
self=scripts/check_docs.sh
problems=0
fail() {
  echo "check_docs: $*" >&2
  problems=$((problems + 1))
}
# True when the path (relative to the current folder) exists and resolves inside the repo.
in_repo() {
  local real
  [ -e "$1" ] || return 1
  real=$(realpath -- "$1") || return 1
  case "$real" in "$root" | "$root"/*) return 0 ;; esac
  return 1
}
# GitHub's anchors of a markdown file's headings, one a line (ASCII headings: lower case, every
# character but letters, digits, spaces, '-' and '_' dropped, spaces to '-').
anchors() {
  grep -E '^#{1,6} ' "$1" | sed -E 's/^#+ +//; s/ +#*$//' | tr '[:upper:]' '[:lower:]' |
    LC_ALL=C sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}

# Files to scan: tracked files when this is a git checkout (plus the docs, which may be new),
# otherwise everything but build output.
list_files() {
  if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    { git ls-files; ls docs/*.md 2> /dev/null; [ -f CONTRIBUTING.md ] && echo CONTRIBUTING.md; } | sort -u
  else
    find . -type f -not -path './.git/*' -not -path './build*' -not -path './runs/*' | sed 's#^\./##' | sort
  fi
}

# ---------------------------------------------------------------------------------------------- (a)
arch=docs/architecture.md
if [ ! -f "$arch" ]; then
  fail "$arch is missing"
else
  walk=$(awk '/^## .*[Tt]he walk of one token/ { on = 1; next } /^## / { on = 0 } on' "$arch")
  if [ -z "$walk" ]; then
    fail "$arch has no section '## ... The walk of one token'"
  else
    names=$(printf '%s\n' "$walk" | grep -oE '`[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_~][A-Za-z0-9_]*)*\([^`]*\)`' |
            sed -E 's/^`//; s/\(.*$//' | sort -u)
    [ -z "$names" ] && fail "the walk in $arch names no function as \`name()\`"
    srcs=$(find core app views -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) 2> /dev/null)
    # A definition: a line starting with a type (not an assignment or a statement) and the name
    # followed by "(", not ending in ";" (a declaration).
    defined_free() {  # name
      local n=$1
      # shellcheck disable=SC2086
      grep -hE "^(([A-Za-z_][^=;]*[ *&:])?)$n\(" $srcs 2> /dev/null | grep -vqE ';[[:space:]]*(//.*)?$'
    }
    defined_member() {  # Class method
      local cls=$1 m=$2 f
      # Out of line: "Type Class::method(" or "Class::method(" (constructors).
      # shellcheck disable=SC2086
      if grep -hE "^(([A-Za-z_][^=;]*[ *&])?)$cls::$m\(" $srcs 2> /dev/null | grep -vqE ';[[:space:]]*(//.*)?$'; then
        return 0
      fi
      # Inline in the class body: an indented definition in a file that declares the class.
      # shellcheck disable=SC2086
      for f in $(grep -lE "^[[:space:]]*(class|struct)[[:space:]]+$cls\b" $srcs 2> /dev/null); do
        grep -qE "^[[:space:]]+([A-Za-z_~][^=;(]*[ *&])?$m\(.*\)[^;]*\{" "$f" && return 0
      done
      return 1
    }
    for n in $names; do
      case "$n" in
        *::*)
          cls=${n%::*}; cls=${cls##*::}; m=${n##*::}
          defined_member "$cls" "$m" || fail "the walk names \`$n()\`, which is not defined in core/, app/ or views/" ;;
        *)
          defined_free "$n" || fail "the walk names \`$n()\`, which is not defined in core/, app/ or views/" ;;
      esac
    done
  fi
fi

# ---------------------------------------------------------------------------------------------- (b)
files=$(list_files)
# Citations of documents that are not in the repo (patterns spelled so this file does not match them).
bad_cites='DESIGN[.]md|spec[ ]§|seeds[/]|[.][.]/shared[/]|shared[/](spec|seeds)[/]|spec[/]routing-math[.]md'
while IFS= read -r f; do
  case "$f" in docs/*|"$self") continue ;; esac
  [ -f "$f" ] || continue
  grep -IqE "$bad_cites" "$f" 2> /dev/null || continue
  while IFS= read -r hit; do
    fail "$f:${hit%%:*} cites a document outside the repo (cite docs/ instead): ${hit#*:}"
  done < <(grep -InE "$bad_cites" "$f")
done <<< "$files"

# Every "*.md" a file names must exist: relative to the root, or (in markdown) to the file's folder.
while IFS= read -r f; do
  case "$f" in "$self") continue ;; esac
  [ -f "$f" ] || continue
  grep -Iq . "$f" 2> /dev/null || continue  # binary
  dir=$(dirname "$f")
  while IFS= read -r hit; do
    line=${hit%%:*} ref=${hit#*:}
    ref=${ref%%#*}
    in_repo "$ref" && continue
    case "$f" in *.md) in_repo "$dir/$ref" && continue ;; esac
    fail "$f:$line names '$ref', which is not a file in the repo"
  done < <(sed -E 's#[A-Za-z][A-Za-z0-9+.-]*://[^ )>"`]*##g' "$f" |
           grep -noE '(^|[^A-Za-z0-9_./-])[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b' |
           sed -E 's/^([0-9]+):[^A-Za-z0-9_./-]?/\1:/')
done <<< "$files"

# Relative links in the markdown pages.
for f in README.md CONTRIBUTING.md docs/*.md; do
  [ -f "$f" ] || continue
  dir=$(dirname "$f")
  while IFS= read -r hit; do
    line=${hit%%:*} target=${hit#*:}
    target=${target#*](}; target=${target%)}            # inline link / image
    target=${target#*]: }                                # reference definition
    target=${target%% *}                                 # drop a title
    target=${target#<}; target=${target%>}
    case "$target" in
      ''|*://*|mailto:*) continue ;;
    esac
    path=${target%%#*}; path=${path%%\?*}
    anchor=
    case "$target" in *'#'*) anchor=${target#*#} ;; esac
    if [ -n "$path" ]; then
      if [ ! -e "$dir/$path" ]; then
        fail "$f:$line links '$target', which does not exist"
        continue
      fi
      if ! in_repo "$dir/$path"; then
        fail "$f:$line links '$target', which is outside the repo"
        continue
      fi
      page="$dir/$path"
    else
      page=$f
    fi
    case "$page" in *.md) ;; *) continue ;; esac
    if [ -n "$anchor" ] && [ -f "$page" ] && ! anchors "$page" | grep -qxF -- "$anchor"; then
      fail "$f:$line links '$target', but $page has no heading with that anchor"
    fi
  done < <(grep -noE '\]\([^)]+\)|^[[:space:]]*\[[^]]+\]:[[:space:]]+[^[:space:]]+' "$f")
done

# ---------------------------------------------------------------------------------------------- (c)
if [ -f "$arch" ]; then
  sections=$(sed -nE 's/^## ([0-9]+)\. .*/\1/p; s/^### ([0-9]+\.[0-9]+) .*/\1/p' "$arch")
  # A citation and what follows it (spelled so that this file's own comments do not match).
  # Multi-byte characters are grouped, so that "?" and "+" apply to the whole "§" under LC_ALL=C.
  cite='architecture(\.md)? +(§)+[0-9]+(\.[0-9]+)?(( *, *| and )§[0-9]+(\.[0-9]+)?| *(-|–) *(§)?[0-9]+(\.[0-9]+)?)*'
  # One grep over every file: "file:line:citation".
  while IFS= read -r hit; do
    f=${hit%%:*} hit=${hit#*:}
    line=${hit%%:*} ref=${hit#*:}
    for n in $(printf '%s\n' "${ref#architecture}" | grep -oE '[0-9]+(\.[0-9]+)?'); do
      printf '%s\n' "$sections" | grep -qxF -- "$n" && continue
      case "$n" in *.*) want="### $n" ;; *) want="## $n." ;; esac
      fail "$f:$line cites '$ref': $arch has no section $n (no heading '$want')"
    done
  done < <(while IFS= read -r f; do [ "$f" != "$self" ] && [ -f "$f" ] && printf '%s\0' "$f"; done <<< "$files" |
           LC_ALL=C xargs -0 grep -HInoE "$cite" 2> /dev/null)
fi

if [ "$problems" -gt 0 ]; then
  echo "check_docs: $problems problem(s)" >&2
  exit 1
fi
echo "check_docs: ok"
