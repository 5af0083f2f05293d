# Glaze, and add_repe_plugin(NAME SOURCES...), which builds a REPE plugin:
# NAME.so, a shared library that exports Glaze's plugin ABI and nothing else
# and needs no C++ runtime where it is loaded.

include(FetchContent)

# A local Glaze tree, when there is one, spares the download (and is the only
# way offline): -DFETCHCONTENT_SOURCE_DIR_GLAZE=DIR, or GLAZE_DIR=DIR in the
# environment.
if(NOT FETCHCONTENT_SOURCE_DIR_GLAZE AND DEFINED ENV{GLAZE_DIR})
  get_filename_component(FETCHCONTENT_SOURCE_DIR_GLAZE "$ENV{GLAZE_DIR}" ABSOLUTE)
endif()

# Glaze is header-only and a plugin needs its include directory alone. Its own
# CMakeLists.txt asks for CMake 3.31, newer than many distributions ship, so
# it is not added as a subproject: SOURCE_SUBDIR names a folder without a
# CMakeLists.txt, which makes FetchContent_MakeAvailable fetch and stop.
FetchContent_Declare(glaze
  GIT_REPOSITORY https://github.com/stephenberry/glaze.git
  GIT_TAG 2eeb21ddf292499a01e6dfdd13e451d7540e4676 # 8.1.0
  SOURCE_SUBDIR include
)
FetchContent_MakeAvailable(glaze)
if(NOT EXISTS "${glaze_SOURCE_DIR}/include/glaze/rpc/repe/plugin_helper.hpp")
  message(FATAL_ERROR "${glaze_SOURCE_DIR} is no Glaze source tree: it lacks include/glaze/rpc/repe/plugin_helper.hpp")
endif()

set(REPE_PLUGIN_EXPORTS "${CMAKE_CURRENT_LIST_DIR}/exports.map")

function(add_repe_plugin name)
  add_library(${name} MODULE ${ARGN})
  # NAME.so rather than libNAME.so: the gateway loads any *.so, and the
  # plugin is named by what it serves.
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_STANDARD 23
    CXX_STANDARD_REQUIRED ON
    CXX_EXTENSIONS OFF
    LINK_DEPENDS "${REPE_PLUGIN_EXPORTS}")
  target_include_directories(${name} SYSTEM PRIVATE "${glaze_SOURCE_DIR}/include")
  target_compile_options(${name} PRIVATE -Wall -Wextra)
  # Glaze needs C++23's <format>: with clang, take libc++, since an older
  # libstdc++ may lack it. The runtime is linked in statically, so the plugin
  # loads where no C++ runtime, or another one, is installed. The version
  # script alone decides what is exported: with -fvisibility=hidden as well,
  # the ABI functions, which Glaze's plugin.h does not mark for export, would
  # be hidden before the script could export them. --no-undefined turns a
  # missing symbol into a link error rather than a failure to load.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(${name} PRIVATE -stdlib=libc++)
    target_link_options(${name} PRIVATE -stdlib=libc++)
  endif()
  target_link_options(${name} PRIVATE
    -static-libstdc++ -static-libgcc -pthread
    "-Wl,--version-script=${REPE_PLUGIN_EXPORTS}" -Wl,--no-undefined)
endfunction()
