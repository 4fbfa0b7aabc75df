# Hostile neighbours and hosts (issue 14): a second user who plants FIFOs,
# huge and forged files in a report directory or makes the directory
# itself, hosts that close and reuse every descriptor, overwrite their
# environment block, or unmap frozen memory.  Criterion drivers start
# hostile_host.c as a real process with the shim preloaded and act as the
# attacker (nobody) meanwhile; they need root for that and skip otherwise.
set(HOSTILE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/hostile)

add_executable(hostile_host ${HOSTILE_DIR}/hostile_host.c)
target_compile_definitions(hostile_host PRIVATE _GNU_SOURCE)
target_compile_options(hostile_host PRIVATE -g -fno-omit-frame-pointer)
target_link_options(hostile_host PRIVATE -rdynamic)
target_link_libraries(hostile_host PRIVATE forkshim_client ${CMAKE_DL_LIBS})

function(hostile_driver name source)
  forkshim_add_test(${name} ${HOSTILE_DIR}/${source} TIMEOUT 120)
  target_compile_definitions(${name} PRIVATE
    HOSTILE_HOST="$<TARGET_FILE:hostile_host>")
  add_dependencies(${name} hostile_host)
endfunction()

hostile_driver(hostile_dir hostile_dir.c)
hostile_driver(hostile_scan hostile_scan.c)
hostile_driver(hostile_fd hostile_fd.c)
hostile_driver(hostile_thaw hostile_thaw.c)
