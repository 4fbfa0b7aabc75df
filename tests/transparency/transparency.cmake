# Transparency and launcher tests: real programs (bash, make, python3, a
# threaded forking server) run with and without the `forkshim` launcher
# must behave the same, byte for byte; the launcher and `forkshim doctor`
# are tested as a user meets them.  Included by tests/CMakeLists.txt.
set(TP_DIR ${CMAKE_CURRENT_SOURCE_DIR}/transparency)

# The make tests skip themselves when there is no make.
find_program(TP_MAKE_PROGRAM NAMES make gmake)

# Helper programs the drivers run.  None links against libforkshim.
add_executable(tp_fork_server ${TP_DIR}/fork_server.c)
target_link_libraries(tp_fork_server PRIVATE pthread)
add_executable(tp_rawfork ${TP_DIR}/rawfork.c)
target_compile_definitions(tp_rawfork PRIVATE _GNU_SOURCE)
add_executable(tp_nomemfd ${TP_DIR}/nomemfd.c)
add_library(tp_forker SHARED ${TP_DIR}/forker.c)
add_executable(tp_via_lib ${TP_DIR}/via_lib.c)
target_link_libraries(tp_via_lib PRIVATE tp_forker)
# The same program without a RUNPATH: only LD_LIBRARY_PATH finds the library.
add_executable(tp_via_lib_norpath ${TP_DIR}/via_lib.c)
target_link_libraries(tp_via_lib_norpath PRIVATE tp_forker)
set_target_properties(tp_via_lib_norpath PROPERTIES SKIP_BUILD_RPATH TRUE)

# tp_driver(NAME SOURCE): a Criterion driver that knows where the launcher
# and the helpers are, rebuilt after them.
function(tp_driver name source)
  forkshim_add_test(${name} ${TP_DIR}/${source} TIMEOUT 120)
  target_compile_definitions(${name} PRIVATE
    TP_LAUNCHER="$<TARGET_FILE:forkshim_launcher>"
    TP_LIB_NAME="$<TARGET_SONAME_FILE_NAME:forkshim>"
    TP_FORK_SERVER="$<TARGET_FILE:tp_fork_server>"
    TP_RAWFORK="$<TARGET_FILE:tp_rawfork>"
    TP_NOMEMFD="$<TARGET_FILE:tp_nomemfd>"
    TP_VIA_LIB="$<TARGET_FILE:tp_via_lib>"
    TP_VIA_LIB_NORPATH="$<TARGET_FILE:tp_via_lib_norpath>"
    TP_FORKER_LIB="$<TARGET_FILE:tp_forker>"
    TP_FORKER_DIR="$<TARGET_FILE_DIR:tp_forker>"
    TP_CC="${CMAKE_C_COMPILER}"
    TP_MAKE="${TP_MAKE_PROGRAM}"
    TP_CMAKE="${CMAKE_COMMAND}"
    TP_BUILD_DIR="${PROJECT_BINARY_DIR}"
    TP_INSTALL_BINDIR="${CMAKE_INSTALL_BINDIR}"
    TP_INSTALL_LIBDIR="${CMAKE_INSTALL_LIBDIR}"
    TP_INSTALL_MANDIR="${CMAKE_INSTALL_MANDIR}")
  add_dependencies(${name} forkshim_launcher tp_fork_server tp_rawfork
    tp_nomemfd tp_forker tp_via_lib tp_via_lib_norpath)
endfunction()

tp_driver(transparency_shell transparency_shell.c)
tp_driver(transparency_make transparency_make.c)
tp_driver(transparency_python transparency_python.c)
tp_driver(transparency_server transparency_server.c)
tp_driver(launcher_cli launcher_cli.c)
tp_driver(launcher_doctor launcher_doctor.c)

# A sanitizer runtime already in LD_PRELOAD must stay first (launcher_cli).
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
  OUTPUT_VARIABLE TP_ASAN_RT OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${TP_ASAN_RT}" OR NOT EXISTS "${TP_ASAN_RT}")
  set(TP_ASAN_RT "")
endif()
target_compile_definitions(launcher_cli PRIVATE TP_ASAN_RT="${TP_ASAN_RT}")

# The fork wrapper changes nothing a program sees (signal masks in its
# atfork handlers), costs the same per fork however many children the
# kernel reaped for it, and touches nothing at start-up (issue 13).
add_executable(tp_fork_host ${TP_DIR}/fork_host.c)
target_compile_definitions(tp_fork_host PRIVATE _GNU_SOURCE)
target_link_libraries(tp_fork_host PRIVATE pthread ${CMAKE_DL_LIBS})
forkshim_add_test(transparency_fork ${TP_DIR}/transparency_fork.c
  TIMEOUT 900)
target_compile_definitions(transparency_fork PRIVATE
  TP_FORK_HOST="$<TARGET_FILE:tp_fork_host>"
  TP_LAUNCHER="$<TARGET_FILE:forkshim_launcher>")
add_dependencies(transparency_fork tp_fork_host forkshim)
# Its flat-cost check compares parent CPU per fork early and late in one
# run: a timing ratio, so only with FORKSHIM_LONG_TESTS (scripts/test
# --long), and alone, so other tests' load does not move one end of it.
if(FORKSHIM_LONG_TESTS)
  target_compile_definitions(transparency_fork PRIVATE TP_LONG=1)
endif()
set_tests_properties(transparency_fork PROPERTIES RUN_SERIAL TRUE)
