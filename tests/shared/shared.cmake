# Shared frozen regions (SHARED.md): Criterion tests in real processes,
# with a worker program of their own that they exec with a token.
add_executable(shared_worker ${CMAKE_CURRENT_LIST_DIR}/worker.c)
target_compile_definitions(shared_worker PRIVATE _GNU_SOURCE)
target_include_directories(shared_worker PRIVATE
  ${PROJECT_SOURCE_DIR}/shim/include ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(shared_worker PRIVATE forkshim)

forkshim_add_test(shared_regions ${CMAKE_CURRENT_LIST_DIR}/shared.c
  TIMEOUT 300)
target_compile_definitions(shared_regions PRIVATE
  SHARED_WORKER="$<TARGET_FILE:shared_worker>"
  SHARED_LAUNCHER="$<TARGET_FILE:forkshim_launcher>")
add_dependencies(shared_regions shared_worker forkshim_launcher)
# kill_9_of_family_frees_shmem judges Shmem and MemAvailable around 1 GiB:
# alone, the suite's other tests do not move them meanwhile.
set_tests_properties(shared_regions PROPERTIES RUN_SERIAL TRUE)

# README's C examples of the three paths compile as printed and run.
# Under a sanitizer build the examples (built plainly) get its runtime
# preloaded before the shim, as the hosts of other tests do.
add_test(NAME shared_readme_examples
  COMMAND ${CMAKE_COMMAND} -E env ${FORKSHIM_SANITIZER_OPTIONS}
    bash ${CMAKE_CURRENT_LIST_DIR}/readme_examples.sh
    ${PROJECT_SOURCE_DIR}/README.md $<TARGET_FILE:forkshim>
    ${PROJECT_SOURCE_DIR}/shim/include ${CMAKE_C_COMPILER}
    "${FORKSHIM_SANITIZER_RUNTIME}")
