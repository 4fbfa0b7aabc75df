# The guard suite (FORKSHIM_GUARD=protect and audit): Criterion drivers that
# start real host programs, a C host built with -g -rdynamic so reports can
# name its functions, and /usr/bin/python3 with a small ctypes library.
set(GUARD_DIR ${CMAKE_CURRENT_SOURCE_DIR}/guard)

add_executable(guard_host ${GUARD_DIR}/guard_host.c)
target_compile_definitions(guard_host PRIVATE _GNU_SOURCE)
target_compile_options(guard_host PRIVATE -g -fno-omit-frame-pointer)
target_link_options(guard_host PRIVATE -rdynamic)
target_link_libraries(guard_host PRIVATE forkshim_client pthread
  ${CMAKE_DL_LIBS})

add_library(guard_scribble MODULE ${GUARD_DIR}/scribble.c)
target_compile_options(guard_scribble PRIVATE -g)
set_target_properties(guard_scribble PROPERTIES PREFIX ""
  OUTPUT_NAME forkshim_guard_scribble)

function(guard_driver name source)
  forkshim_add_test(${name} ${GUARD_DIR}/${source} TIMEOUT 120)
  target_compile_definitions(${name} PRIVATE
    GUARD_HOST="$<TARGET_FILE:guard_host>"
    GUARD_SCRIBBLE="$<TARGET_FILE:guard_scribble>")
  add_dependencies(${name} guard_host guard_scribble)
endfunction()

guard_driver(guard_protect guard_protect.c)
guard_driver(guard_audit guard_audit.c)
guard_driver(guard_chain guard_chain.c)
guard_driver(guard_python guard_python.c)

# The benchmark (scripts/bench/guard/run builds and runs it).
add_executable(bench_guard
  ${PROJECT_SOURCE_DIR}/scripts/bench/guard/bench_guard.c)
target_compile_definitions(bench_guard PRIVATE _GNU_SOURCE
  FORKSHIM_BENCH_LIB="$<TARGET_FILE:forkshim>")
target_link_libraries(bench_guard PRIVATE forkshim_client forkshim_run_host
  ${CMAKE_DL_LIBS})
add_dependencies(bench_guard forkshim)
