# The Python binding's tests (inject/python/forkshim.py): each module below
# runs as a unittest program with Debian's python3 (and python3-numpy)
# twice, under LD_PRELOAD=libforkshim (FORKSHIM_TEST_MODE=shim) and without
# the shim (plain), so both the handle and the by-value paths are covered.
# A module's tests meant for the other run are skipped; every module checks
# that the shim's presence matches its run.
set(FORKSHIM_PYTHON /usr/bin/python3 CACHE FILEPATH
  "Python interpreter for the Python binding tests")
set(PY_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR}/python)

# FORKSHIM_TEST_LIB: the library, for the tests of python3 -m forkshim
# (not in sanitizer builds, whose library needs the sanitizer's runtime
# loaded first).
if(FORKSHIM_SANITIZER_RUNTIME)
  set(py_test_lib "")
else()
  set(py_test_lib "$<TARGET_FILE:forkshim>")
endif()

function(forkshim_add_python_test module)
  set(run ${FORKSHIM_PYTHON} -B -I -m unittest discover
    -s ${PY_TEST_DIR} -t ${PY_TEST_DIR} -p ${module}.py -v)
  add_test(NAME python_${module}_shim COMMAND ${CMAKE_COMMAND} -E env
    FORKSHIM_TEST_MODE=shim LD_PRELOAD=${FORKSHIM_TEST_PRELOAD}
    FORKSHIM_TEST_LIB=${py_test_lib} ${FORKSHIM_SANITIZER_OPTIONS} ${run})
  add_test(NAME python_${module}_plain COMMAND ${CMAKE_COMMAND} -E env
    --unset=LD_PRELOAD FORKSHIM_TEST_MODE=plain
    FORKSHIM_TEST_LIB=${py_test_lib} ${run})
  set_tests_properties(python_${module}_shim python_${module}_plain
    PROPERTIES TIMEOUT 120)
endfunction()

forkshim_add_python_test(test_freeze)
forkshim_add_python_test(test_share)
forkshim_add_python_test(test_pools)
forkshim_add_python_test(test_install)
forkshim_add_python_test(test_observe)
# FrozenMapping: real pools of every start method.
forkshim_add_python_test(test_mapping)
set_tests_properties(python_test_mapping_shim python_test_mapping_plain
  PROPERTIES TIMEOUT 300)
# Real pools of every start method, results, lifetimes (a few minutes on a
# loaded 2-core machine).
forkshim_add_python_test(test_shared)
set_tests_properties(python_test_shared_shim python_test_shared_plain
  PROPERTIES TIMEOUT 600)
