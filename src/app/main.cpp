// unlearn: thin entry point; everything lives in the app library.
#include "unlearn/app/cli.h"

int main(int argc, char** argv) { return unlearn::unlearn_main(argc, argv); }
