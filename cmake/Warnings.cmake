# unlearn_warnings: linked PRIVATE by every target. Also carries the sanitizer flags of the ASan+UBSan build.
add_library(unlearn_warnings INTERFACE)
target_compile_options(unlearn_warnings INTERFACE -Wall -Wextra -Wnon-virtual-dtor -Wno-unused-parameter)
if(UNLEARN_WARNINGS_AS_ERRORS)
  target_compile_options(unlearn_warnings INTERFACE -Werror)
endif()

if(UNLEARN_SANITIZE)
  # One combined build; -O1 keeps it fast enough. Flags go everywhere so that templates instantiated in tests match.
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g)
  add_link_options(-fsanitize=address,undefined)
endif()
