# Stress and fault injection (tests/stress): included by tests/CMakeLists.txt.
#
# stress_host runs one stress mode in one fresh process; the stress driver
# starts it many times, each run under a timeout.  With FORKSHIM_LONG_TESTS
# the same driver is registered once more as stress_long: 30 s per test, two
# tests at a time, 60 s in all.  stress_signals and stress_faults are
# deterministic: signal handlers inside a fork, handlers of a thread that
# waits for the table lock, and fault injection.
set(STRESS_DIR ${CMAKE_CURRENT_LIST_DIR})

function(stress_host name source)
  add_executable(${name} ${STRESS_DIR}/${source})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_include_directories(${name} PRIVATE
    ${PROJECT_SOURCE_DIR}/shim/include)
  target_link_libraries(${name} PRIVATE pthread ${CMAKE_DL_LIBS} ${ARGN})
endfunction()

stress_host(stress_host stress_host.c forkshim)
stress_host(stress_dlopen_host dlopen_host.c) # loads the shim itself
stress_host(stress_secure_host secure_host.c forkshim)
stress_host(stress_early_host early_host.c forkshim)

forkshim_add_test(stress ${STRESS_DIR}/stress.c TIMEOUT 900)
target_compile_definitions(stress PRIVATE
  STRESS_HOST="$<TARGET_FILE:stress_host>")
add_dependencies(stress stress_host)

if(FORKSHIM_LONG_TESTS)
  add_test(NAME stress_long COMMAND ${CMAKE_COMMAND} -E env
    FORKSHIM_STRESS_SECONDS=30
    $<TARGET_FILE:stress> --jobs 2)
  set_tests_properties(stress_long PROPERTIES TIMEOUT 1200)
endif()

forkshim_add_test(stress_signals ${STRESS_DIR}/signals.c TIMEOUT 120)
forkshim_add_test(stress_lockwait ${STRESS_DIR}/lockwait.c TIMEOUT 120)

forkshim_add_test(stress_faults ${STRESS_DIR}/faults.c TIMEOUT 180)
target_compile_definitions(stress_faults PRIVATE
  FAULTS_DLOPEN_HOST="$<TARGET_FILE:stress_dlopen_host>"
  FAULTS_SECURE_HOST="$<TARGET_FILE:stress_secure_host>"
  FAULTS_EARLY_HOST="$<TARGET_FILE:stress_early_host>")
add_dependencies(stress_faults stress_dlopen_host stress_secure_host
  stress_early_host)
