# The core benchmark and the hand-off demo.  Neither links libforkshim: they
# reach it through dlsym when it is preloaded, and bench_core preloads it
# itself, in the workers it re-executes, from the path compiled in here
# (FORKSHIM_BENCH_SHIM in the environment or --shim overrides it).
#
# bench_core's third kind of process preloads an empty library linked as
# the shim is (shim/CMakeLists.txt): what any LD_PRELOAD costs.
add_library(forkshim_empty_preload SHARED
  ${CMAKE_CURRENT_SOURCE_DIR}/empty_preload.c)
set_target_properties(forkshim_empty_preload PROPERTIES
  C_VISIBILITY_PRESET hidden)
target_compile_options(forkshim_empty_preload PRIVATE
  -ftls-model=initial-exec -fno-strict-aliasing)
target_link_options(forkshim_empty_preload PRIVATE
  -Wl,-z,nodelete -Wl,-z,now -Wl,--no-undefined -Wl,-z,noseparate-code)

function(forkshim_add_bench name source)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${source})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE
    FORKSHIM_BENCH_LIB="$<TARGET_FILE:forkshim>"
    FORKSHIM_BENCH_EMPTY="$<TARGET_FILE:forkshim_empty_preload>")
  target_link_libraries(${name} PRIVATE forkshim_client ${CMAKE_DL_LIBS})
  add_dependencies(${name} forkshim forkshim_empty_preload)
endfunction()

forkshim_add_bench(bench_core core.c)
forkshim_add_bench(handoff handoff.c)
forkshim_add_bench(bench_sharing sharing.c)
target_include_directories(bench_sharing PRIVATE ${PROJECT_SOURCE_DIR}/shim)
forkshim_add_bench(bench_shared shared.c)
