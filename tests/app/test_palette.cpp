// The experts' colours (views/widgets.cpp viewColour): 64 experts, 64 colours that read as different.
#include <gtest/gtest.h>

#include "views.h"

TEST(Palette, SixtyFourExpertsGetSixtyFourDistinctColours) {
    float worst = 1e9f;
    int wa = 0, wb = 0;
    for (int a = 0; a < k_viewColours; a++)
        for (int b = 0; b < a; b++)
            if (const float d = viewColourDistance(a, b); d < worst) worst = d, wa = a, wb = b;
    // Delta-E 76 of 10 and more is another colour at a glance; the old palette repeated every 8 (0).
    EXPECT_GT(worst, 15.f) << "e" << wa << " and e" << wb << " look alike";
    EXPECT_EQ(viewColour(0), viewColour(k_viewColours));  // past 64 they repeat, by design
}
