# Configures the project with each ROUTELAB_CUDA mode, with nvcc hidden from PATH and (where this
# machine has it) visible, and checks what each mode does:
#   cmake -DSRC=<source dir> -DWORK=<scratch dir> -P cuda_option.cmake
# Configure only (GUI and tests off), so it takes seconds per mode.
cmake_minimum_required(VERSION 3.25)

# PATH without the directories that hold an nvcc: what a machine without the toolkit sees.
set(no_nvcc_path "")
string(REPLACE ":" ";" path_dirs "$ENV{PATH}")
foreach(d IN LISTS path_dirs)
  if(NOT EXISTS "${d}/nvcc")
    list(APPEND no_nvcc_path "${d}")
  endif()
endforeach()
string(REPLACE ";" ":" no_nvcc_path "${no_nvcc_path}")
find_program(NVCC nvcc NO_CACHE)

set(failures 0)
# configure(<name> <mode> <visible|hidden>): sets out_<name> (output) and rc_<name> (exit status).
function(configure name mode nvcc)
  set(dir "${WORK}/${name}")
  file(REMOVE_RECURSE "${dir}")
  set(env ${CMAKE_COMMAND} -E env --unset=CUDACXX --unset=CUDA_PATH)
  if(nvcc STREQUAL "hidden")
    list(APPEND env "PATH=${no_nvcc_path}")
  endif()
  execute_process(COMMAND ${env} ${CMAKE_COMMAND} -S "${SRC}" -B "${dir}" -DROUTELAB_CUDA=${mode}
                          -DROUTELAB_GUI=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  # Error messages come wrapped and indented: compare with runs of whitespace made one space.
  string(REGEX REPLACE "[ \t\r\n]+" " " out "${out}${err}")
  set(out_${name} "${out}" PARENT_SCOPE)
  set(rc_${name} "${rc}" PARENT_SCOPE)
endfunction()

# expect(<what> <condition...>): the condition as if() takes it, over the caller's variables.
function(expect what)
  if(NOT (${ARGN}))
    message(SEND_ERROR "cuda_option: ${what}")
  else()
    message(STATUS "ok: ${what}")
  endif()
endfunction()

# True when the generated compile commands define ROUTELAB_HAVE_CUDA for a core source.
function(has_define name outvar)
  file(READ "${WORK}/${name}/compile_commands.json" cc)
  string(FIND "${cc}" "-DROUTELAB_HAVE_CUDA" at)
  if(at GREATER -1)
    set(${outvar} TRUE PARENT_SCOPE)
  else()
    set(${outvar} FALSE PARENT_SCOPE)
  endif()
endfunction()

configure(off OFF hidden)
string(FIND "${out_off}" "RouteLab: CUDA" said)
expect("OFF configures" rc_off EQUAL 0)
expect("OFF says nothing about CUDA" said EQUAL -1)

configure(on_missing ON hidden)
string(FIND "${out_on_missing}" "ROUTELAB_CUDA=ON but no CUDA compiler was found. Install the CUDA toolkit" said)
expect("ON without nvcc stops the configure" NOT rc_on_missing EQUAL 0)
expect("ON without nvcc says what to install" said GREATER -1)

configure(auto_missing AUTO hidden)
string(FIND "${out_auto_missing}" "RouteLab: CUDA not found" said)
expect("AUTO without nvcc configures" rc_auto_missing EQUAL 0)
expect("AUTO without nvcc reports it" said GREATER -1)
if(rc_auto_missing EQUAL 0)
  has_define(auto_missing have_def)
  expect("AUTO without nvcc does not define ROUTELAB_HAVE_CUDA" NOT have_def)
endif()

configure(bad maybe hidden)
expect("an unknown mode is refused" NOT rc_bad EQUAL 0)

if(NVCC)
  configure(auto_found AUTO visible)
  string(FIND "${out_auto_found}" "RouteLab: CUDA found" said)
  expect("AUTO with nvcc configures" rc_auto_found EQUAL 0)
  expect("AUTO with nvcc reports it" said GREATER -1)
  if(rc_auto_found EQUAL 0)
    has_define(auto_found have_def)
    expect("AUTO with nvcc defines ROUTELAB_HAVE_CUDA on routelab_core" have_def)
  endif()
else()
  message(STATUS "no nvcc on this machine: the found-CUDA cases are skipped")
endif()
