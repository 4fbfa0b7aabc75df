# Fuzz targets (tests/fuzz): libFuzzer, so clang only, and only with
# -DFORKSHIM_FUZZ=ON: tests/fuzz/run.sh makes such a build of its own
# (build-fuzz) and runs them.  The default gcc build skips all of this.
#
# fuzz_handles and fuzz_model link libforkshim, instrumented here for
# coverage, ASan and UBSan (the sanitizer runtime is the shared one, so the
# library and the fuzzer share it); fuzz_config compiles the shim's config.c
# and log.c into itself, their functions being hidden in the library.
# Each target is a ctest test that runs the checked-in corpus and then
# FUZZ_RUNS new inputs (or FUZZ_SECONDS seconds with FORKSHIM_LONG_TESTS),
# growing a corpus of its own in the build directory.
option(FORKSHIM_FUZZ "Build the libFuzzer targets (clang)" OFF)
if(NOT FORKSHIM_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "FORKSHIM_FUZZ needs clang (CC=clang); fuzzers skipped")
  return()
endif()

set(FUZZ_RUNS 20000 CACHE STRING "New inputs per fuzz target in a short run")
set(FUZZ_SECONDS 120 CACHE STRING "Seconds per fuzz target in a long run")
set(FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=all
  -fno-omit-frame-pointer)
execute_process(COMMAND ${CMAKE_C_COMPILER}
  -print-file-name=libclang_rt.asan-x86_64.so
  OUTPUT_VARIABLE FUZZ_ASAN_RT OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${CMAKE_C_COMPILER}
  -print-file-name=libclang_rt.fuzzer-x86_64.a
  OUTPUT_VARIABLE FUZZ_LIBFUZZER OUTPUT_STRIP_TRAILING_WHITESPACE)
get_filename_component(FUZZ_RT_DIR "${FUZZ_ASAN_RT}" DIRECTORY)

target_compile_options(forkshim PRIVATE -fsanitize=fuzzer-no-link ${FUZZ_SAN})
target_link_options(forkshim PRIVATE ${FUZZ_SAN} -shared-libsan)

function(fuzz_target name)
  add_executable(${name} ${FUZZ_DIR}/${name}.c ${ARGN})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_include_directories(${name} PRIVATE
    ${PROJECT_SOURCE_DIR}/shim/include ${PROJECT_SOURCE_DIR}/shim)
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer ${FUZZ_SAN})
  # Linked by hand: the sanitizer runtime (shared with libforkshim) must
  # be the first library loaded, and clang 14's -fsanitize=fuzzer puts
  # libFuzzer's libstdc++ before it; and without clang's asan-preinit the
  # runtime starts from its constructor, after libc's, like gcc's does.
  target_link_options(${name} PRIVATE ${FUZZ_ASAN_RT}
    -Wl,-rpath,${FUZZ_RT_DIR})
  target_link_libraries(${name} PRIVATE ${FUZZ_LIBFUZZER} stdc++ m pthread
    ${CMAKE_DL_LIBS})

  set(corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${name})
  if(FORKSHIM_LONG_TESTS)
    set(budget -max_total_time=${FUZZ_SECONDS})
  else()
    set(budget -runs=${FUZZ_RUNS})
  endif()
  # The new corpus first (libFuzzer adds to it), the seeds read only.
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -E env
    FORKSHIM_MAX_REGIONS=32 FORKSHIM_LOG=error
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    $<TARGET_FILE:${name}> ${budget} -max_len=512 -timeout=20
    -print_final_stats=1 ${corpus} ${FUZZ_DIR}/corpus/${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 1800
    FIXTURES_REQUIRED fuzz_corpus)
endfunction()

add_test(NAME fuzz_corpus_dirs COMMAND ${CMAKE_COMMAND} -E make_directory
  ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fuzz_handles
  ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fuzz_model
  ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fuzz_config
  ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fuzz_tokens)
set_tests_properties(fuzz_corpus_dirs PROPERTIES FIXTURES_SETUP fuzz_corpus)

fuzz_target(fuzz_handles)
target_link_libraries(fuzz_handles PRIVATE forkshim)
fuzz_target(fuzz_model)
target_link_libraries(fuzz_model PRIVATE forkshim)
fuzz_target(fuzz_tokens)
target_link_libraries(fuzz_tokens PRIVATE forkshim)
fuzz_target(fuzz_config ${PROJECT_SOURCE_DIR}/shim/config.c
  ${PROJECT_SOURCE_DIR}/shim/log.c)
