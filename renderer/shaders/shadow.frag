// Multiplied into what is drawn (blend: destination x (1 - alpha)); the mask stays as it was (alpha 0).
in vec2 v_r;
flat in float v_darkness;

layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_mask;

void main() {
    float r2 = dot(v_r, v_r);
    // darkest under the middle, fading to nothing at the quad's inscribed ellipse
    float a = v_darkness * exp(-2.0 * r2) * max(1.0 - r2, 0.0);
    f_color = vec4(0.0, 0.0, 0.0, a);
    f_mask = vec4(0.0);
}
