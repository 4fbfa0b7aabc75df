# Sharing figures and per-process reports: the accuracy of
# forkshim_sharing against smaps, the reports a real family leaves under
# FORKSHIM_REPORT (tests/report/family_host.c, run with the shim
# preloaded), `forkshim report` on checked-in samples, and a Python pool
# under `forkshim --report`.
set(REPORT_DIR ${CMAKE_CURRENT_SOURCE_DIR}/report)

forkshim_add_test(report_accuracy ${REPORT_DIR}/accuracy.c TIMEOUT 120)

add_executable(report_family_host ${REPORT_DIR}/family_host.c)
target_compile_definitions(report_family_host PRIVATE _GNU_SOURCE)
target_link_libraries(report_family_host PRIVATE forkshim_client
  ${CMAKE_DL_LIBS})

# A fork while another thread arms the report (report_family): the host,
# and a sigaction that holds the arming lock open, preloaded after the shim.
add_executable(report_arm_race_host ${REPORT_DIR}/arm_race_host.c)
target_compile_definitions(report_arm_race_host PRIVATE _GNU_SOURCE)
target_link_libraries(report_arm_race_host PRIVATE forkshim_client pthread
  ${CMAKE_DL_LIBS})
add_library(report_slow_sigaction MODULE ${REPORT_DIR}/slow_sigaction.c)
target_compile_definitions(report_slow_sigaction PRIVATE _GNU_SOURCE)
target_link_libraries(report_slow_sigaction PRIVATE ${CMAKE_DL_LIBS})

function(report_driver name source)
  forkshim_add_test(${name} ${REPORT_DIR}/${source} TIMEOUT 120)
  target_compile_definitions(${name} PRIVATE
    REPORT_HOST="$<TARGET_FILE:report_family_host>"
    REPORT_ARM_RACE_HOST="$<TARGET_FILE:report_arm_race_host>"
    REPORT_SLOW_SIGACTION="$<TARGET_FILE:report_slow_sigaction>"
    REPORT_LAUNCHER="$<TARGET_FILE:forkshim_launcher>"
    REPORT_SAMPLES="${REPORT_DIR}/samples"
    REPORT_PYTHON_DIR="${PROJECT_SOURCE_DIR}/inject/python"
    REPORT_POOL="${REPORT_DIR}/pool.py"
    REPORT_DICT_POOL="${PROJECT_SOURCE_DIR}/scripts/bench/pool/dict_demo.py")
  add_dependencies(${name} report_family_host forkshim_launcher
    report_arm_race_host report_slow_sigaction)
endfunction()

report_driver(report_family report_family.c)
report_driver(report_render report_render.c)
# Some 900 runs of the launcher (every cut of two files): minutes in a
# sanitizer build on a loaded machine.
set_tests_properties(report_render PROPERTIES TIMEOUT 900)
report_driver(report_python report_python.c)
report_driver(report_hostile report_hostile.c)
# 100,000 regions: seconds here, longer in a sanitizer build on a loaded
# machine (a hang still ends at each run's own timeout).
set_tests_properties(report_hostile PROPERTIES TIMEOUT 900)
report_driver(report_dir report_dir.c)
