// Camera effects: one quad per sample over its cell of the output-size atlas (renderer/camera_pass.py).
in vec2 in_corner;
in vec4 i_cam0;  // cell, blur sigma (output px), noise sd (fraction of full scale), unused
in vec4 i_cam1;  // white balance gains (rgb), unused
in vec4 i_seed;  // the sample's noise seed, 16 bits per component (exact in a float)

flat out vec4 v_cam0;
flat out vec3 v_wb;
flat out vec3 v_seed;

void main() {
    gl_Position = vec4(-1.0 + 2.0 * (cell_origin(i_cam0.x) + in_corner) / u_grid, 0.0, 1.0);
    v_cam0 = i_cam0;
    v_wb = i_cam1.rgb;
    v_seed = i_seed.xyz;
}
