# Unit tests of the core ABI: one Criterion program per file, linked
# against libforkshim.  The helper program never links the shim; tests run
# it with LD_PRELOAD in an explicit environment.
add_executable(unit_helper ${CMAKE_CURRENT_LIST_DIR}/helper.c)
target_compile_definitions(unit_helper PRIVATE _GNU_SOURCE)
target_include_directories(unit_helper PRIVATE
  ${PROJECT_SOURCE_DIR}/shim/include ${PROJECT_SOURCE_DIR}/inject)
target_link_libraries(unit_helper PRIVATE ${CMAKE_DL_LIBS})

# An older shim's function table (old_table.c), preloaded before the shim
# (after a sanitizer's runtime, which must come first).
add_library(unit_old_table MODULE ${CMAKE_CURRENT_LIST_DIR}/old_table.c)
target_compile_definitions(unit_old_table PRIVATE _GNU_SOURCE)
target_include_directories(unit_old_table PRIVATE
  ${PROJECT_SOURCE_DIR}/shim/include)
target_link_libraries(unit_old_table PRIVATE ${CMAKE_DL_LIBS})
if(FORKSHIM_SANITIZER_RUNTIME)
  set(UNIT_OLD_TABLE_PRELOAD "${FORKSHIM_SANITIZER_RUNTIME}:")
else()
  set(UNIT_OLD_TABLE_PRELOAD "")
endif()
string(APPEND UNIT_OLD_TABLE_PRELOAD
  "$<TARGET_FILE:unit_old_table>:$<TARGET_FILE:forkshim>")

foreach(t api config family freeze handles index lookup readable sharing
    visible)
  forkshim_add_test(unit_${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c TIMEOUT 120)
  target_compile_definitions(unit_${t} PRIVATE
    UNIT_HELPER="$<TARGET_FILE:unit_helper>"
    UNIT_OLD_TABLE_PRELOAD="${UNIT_OLD_TABLE_PRELOAD}")
  add_dependencies(unit_${t} unit_helper unit_old_table)
endforeach()

# The readability check's ways, each called directly: its source is built
# into the test (its symbols are hidden in the library).
target_sources(unit_readable PRIVATE ${PROJECT_SOURCE_DIR}/shim/readable.c)
target_include_directories(unit_readable PRIVATE ${PROJECT_SOURCE_DIR}/shim)
