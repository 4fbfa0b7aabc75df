# The two artifacts, made from this build tree and checked as a user gets
# them (not in sanitizer builds: an instrumented library is not shipped).
#  package_deb          cpack into BUILD/package-test; the .deb's file list,
#                       SONAME and Depends (check_deb_contents.sh)
#  package_deb_install  apt installs it into a throwaway overlay of this
#                       machine's system, runs `forkshim doctor bash`, the
#                       Python module under the launcher and a C program
#                       built with pkg-config, removes it, checks nothing is
#                       left (check_deb.sh; root only, else skipped)
#  package_wheel        target wheel; the wheel in a fresh venv runs a fork
#                       Pool with share() under python3 -m forkshim
#                       (check_wheel.sh)
if(FORKSHIM_SANITIZER_RUNTIME)
  return()
endif()
set(pkg_dir ${PROJECT_BINARY_DIR}/package-test)
set(pkg_src ${CMAKE_CURRENT_LIST_DIR})
execute_process(COMMAND dpkg --print-architecture
  OUTPUT_VARIABLE deb_arch OUTPUT_STRIP_TRAILING_WHITESPACE)
set(deb ${pkg_dir}/forkshim_${PROJECT_VERSION}_${deb_arch}.deb)

add_test(NAME package_deb COMMAND bash -c
  "rm -rf \"$0\" && cpack --config \"$1\" -B \"$0\" >\"$0.log\" 2>&1 || { cat \"$0.log\"; exit 1; }; \"$2\" \"$3\" \"$4\" \"$5\""
  ${pkg_dir} ${PROJECT_BINARY_DIR}/CPackConfig.cmake
  ${pkg_src}/check_deb_contents.sh ${deb} ${PROJECT_VERSION}
  ${CMAKE_LIBRARY_ARCHITECTURE})
set_tests_properties(package_deb PROPERTIES TIMEOUT 900
  FIXTURES_SETUP forkshim_deb)

add_test(NAME package_deb_install COMMAND bash -c
  "[ \"$(id -u)\" = 0 ] || { echo 'not root: skipped'; exit 77; }; exec \"$0\" \"$1\""
  ${pkg_src}/check_deb.sh ${deb})
set_tests_properties(package_deb_install PROPERTIES TIMEOUT 900
  FIXTURES_REQUIRED forkshim_deb SKIP_RETURN_CODE 77)

add_test(NAME package_wheel COMMAND bash -c
  "\"$0\" --build \"$1\" --target wheel && \"$2\" \"$1\"/forkshim-\"$3\"-py3-none-*.whl"
  ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR} ${pkg_src}/check_wheel.sh
  ${PROJECT_VERSION})
set_tests_properties(package_wheel PROPERTIES TIMEOUT 900
  ENVIRONMENT FORKSHIM_PYTHON=${FORKSHIM_PYTHON})
