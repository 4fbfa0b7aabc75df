# End-to-end tests: real host programs, started by the e2e_* drivers as real
# processes with an explicit environment, with the shim preloaded or not.
# The hosts never link against libforkshim; they reach it only because it
# is preloaded (through inject/forkshim_client.h, or ctypes for Python).
set(E2E_DIR ${CMAKE_CURRENT_SOURCE_DIR}/e2e)

add_library(e2e_plugin_module MODULE ${E2E_DIR}/plugin.c)
target_compile_definitions(e2e_plugin_module PRIVATE _GNU_SOURCE)
target_link_libraries(e2e_plugin_module PRIVATE forkshim_client
  ${CMAKE_DL_LIBS})
set_target_properties(e2e_plugin_module PROPERTIES
  PREFIX "" OUTPUT_NAME forkshim_e2e_plugin)

function(e2e_host name source)
  add_executable(${name} ${E2E_DIR}/${source})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_link_libraries(${name} PRIVATE forkshim_client pthread
    ${CMAKE_DL_LIBS} ${ARGN})
endfunction()

e2e_host(e2e_plugin_host plugin_host.c)
e2e_host(e2e_mt_host mt_host.c)
e2e_host(e2e_fork_paths_host fork_paths.c util)

# e2e_driver(NAME SOURCE HOST...): a Criterion driver that knows where the
# hosts are (E2E_<HOST> compile definitions) and is rebuilt after them.
function(e2e_driver name source)
  forkshim_add_test(${name} ${E2E_DIR}/${source} TIMEOUT 180)
  target_compile_definitions(${name} PRIVATE
    E2E_PLUGIN_HOST="$<TARGET_FILE:e2e_plugin_host>"
    E2E_PLUGIN_MODULE="$<TARGET_FILE:e2e_plugin_module>"
    E2E_MT_HOST="$<TARGET_FILE:e2e_mt_host>"
    E2E_FORK_PATHS="$<TARGET_FILE:e2e_fork_paths_host>")
  add_dependencies(${name} e2e_plugin_host e2e_plugin_module e2e_mt_host
    e2e_fork_paths_host)
endfunction()

e2e_driver(e2e_plugin e2e_plugin.c)
e2e_driver(e2e_python e2e_python.c)
e2e_driver(e2e_threads e2e_threads.c)
e2e_driver(e2e_fork_paths e2e_fork_paths.c)
e2e_driver(e2e_shell e2e_shell.c)
e2e_driver(e2e_runner e2e_runner.c)
